// A broker logger that drops everything, for tests that do not look at logs.
import { createLogger, type Logger } from '../../src/broker/logger.js';

export const silentLogger: Logger = createLogger({ write: () => undefined });
