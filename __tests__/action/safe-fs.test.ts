// Credential file hygiene on a real file system: private directory, exclusive 0600 create,
// symlink refusal, and shredding that really overwrites the bytes.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPrivateDir,
  replacePrivateFile,
  shredDirectory,
  shredFile,
  UnsafePathError,
  writeNewPrivateFile,
} from '../../src/action/safe-fs.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'k8s-ea-safefs-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SECRET = 'token-abcdef-0123456789-SECRET';
const mode = (p: string) => lstatSync(p).mode & 0o777;

describe('createPrivateDir', () => {
  test('creates a fresh 0700 directory with a random name each time', async () => {
    const a = await createPrivateDir(root, 'kc-');
    const b = await createPrivateDir(root, 'kc-');
    expect(a).not.toBe(b);
    expect(mode(a)).toBe(0o700);
    expect(a.startsWith(join(root, 'kc-'))).toBe(true);
  });

  test('refuses a parent that is a symlink', async () => {
    const real = join(root, 'real-parent');
    mkdirSync(real);
    const link = join(root, 'link-parent');
    symlinkSync(real, link);
    await expect(createPrivateDir(link, 'kc-')).rejects.toThrow(/symbolic link/);
  });
});

describe('writeNewPrivateFile', () => {
  test('writes the file with mode 0600 even under a permissive umask', async () => {
    const dir = await createPrivateDir(root, 'w-');
    const path = join(dir, 'kubeconfig');
    const old = process.umask(0);
    try {
      await writeNewPrivateFile(path, SECRET);
    } finally {
      process.umask(old);
    }
    expect(mode(path)).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe(SECRET);
  });

  test('refuses to overwrite an existing file and leaves it untouched', async () => {
    const path = join(root, 'existing');
    writeFileSync(path, 'original');
    await expect(writeNewPrivateFile(path, SECRET)).rejects.toThrow(UnsafePathError);
    expect(readFileSync(path, 'utf8')).toBe('original');
  });

  test('refuses a symlink planted at the path, dangling or not, and writes nothing through it', async () => {
    const target = join(root, 'attacker-file');
    writeFileSync(target, 'attacker');
    const link = join(root, 'planted-link');
    symlinkSync(target, link);
    await expect(writeNewPrivateFile(link, SECRET)).rejects.toThrow(/Refusing to write/);
    expect(readFileSync(target, 'utf8')).toBe('attacker');

    const dangling = join(root, 'dangling-link');
    const wouldBe = join(root, 'would-be-created');
    symlinkSync(wouldBe, dangling);
    await expect(writeNewPrivateFile(dangling, SECRET)).rejects.toThrow(/Refusing to write/);
    expect(existsSync(wouldBe)).toBe(false);
  });

  test('refuses a path whose directory is a symlink', async () => {
    const real = join(root, 'real-dir');
    mkdirSync(real);
    const link = join(root, 'link-dir');
    symlinkSync(real, link);
    await expect(writeNewPrivateFile(join(link, 'kubeconfig'), SECRET)).rejects.toThrow(/symbolic link/);
    expect(existsSync(join(real, 'kubeconfig'))).toBe(false);
  });
});

describe('shredding', () => {
  test('overwrites the bytes before unlinking (a hard link still sees the inode)', async () => {
    const path = join(root, 'to-shred');
    const data = SECRET.repeat(5000); // larger than one overwrite chunk
    writeFileSync(path, data);
    const witness = join(root, 'witness');
    linkSync(path, witness);
    expect(await shredFile(path)).toBe(true);
    expect(existsSync(path)).toBe(false);
    const left = readFileSync(witness);
    expect(left.length).toBe(Buffer.byteLength(data));
    expect(left.toString('latin1')).not.toContain('SECRET');
  });

  test('removes a symlink without touching its target, and missing files are fine', async () => {
    const target = join(root, 'keep-me');
    writeFileSync(target, 'precious');
    const link = join(root, 'link-to-keep');
    symlinkSync(target, link);
    expect(await shredFile(link)).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('precious');
    expect(await shredFile(join(root, 'never-existed'))).toBe(false);
  });

  test('shredDirectory removes the directory and everything in it; twice is harmless', async () => {
    const dir = await createPrivateDir(root, 'sd-');
    writeFileSync(join(dir, 'kubeconfig'), SECRET);
    writeFileSync(join(dir, 'other'), 'x');
    expect(await shredDirectory(dir)).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(await shredDirectory(dir)).toBe(false);
  });
});

describe('replacePrivateFile', () => {
  test('swaps the contents atomically, keeps 0600, and shreds the old bytes (a hard link sees them go)', async () => {
    const dir = join(root, 'replace');
    mkdirSync(dir, { mode: 0o700 });
    const path = join(dir, 'credential.json');
    await writeNewPrivateFile(path, SECRET);
    const witness = join(dir, 'witness');
    linkSync(path, witness);
    await replacePrivateFile(path, 'renewed');
    expect(readFileSync(path, 'utf8')).toBe('renewed');
    expect(mode(path)).toBe(0o600);
    // The old inode was overwritten before its last name went: nothing of the secret is left in it.
    expect(readFileSync(witness, 'utf8')).not.toContain(SECRET);
    rmSync(witness);
    // Only the file itself is left: no temporary names beside it.
    expect(readdirSync(dir)).toEqual(['credential.json']);
  });

  test('refuses a directory that is a symlink, and writes nothing through it', async () => {
    const real = join(root, 'replace-real');
    mkdirSync(real, { mode: 0o700 });
    const linked = join(root, 'replace-link');
    symlinkSync(real, linked);
    await expect(replacePrivateFile(join(linked, 'credential.json'), SECRET)).rejects.toThrow(
      UnsafePathError,
    );
    expect(readdirSync(real)).toEqual([]);
  });
});
