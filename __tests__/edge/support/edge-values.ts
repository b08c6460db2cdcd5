// The chart values for edge mode the edge's chart tests render with (edge-values.yaml).
import { join } from 'node:path';

export const EDGE_VALUES = join(import.meta.dirname, 'edge-values.yaml');
