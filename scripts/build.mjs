// Bundles entry points with esbuild (deterministic output, no absolute paths).
//   node scripts/build.mjs          the action's committed dist/ (what the runner runs):
//     dist/main/index.js            the main step (kept small: no Kubernetes client)
//     dist/post/index.js            the post step, with its direct-revoke fallback (plain HTTPS)
//     dist/credential/index.js      the kubeconfig's exec credential plugin (credentials: exec)
//   node scripts/build.mjs broker   the broker, build/broker/index.js (git-ignored; the image's
//                                   build stage and the tests that spawn the broker build it)
// A missing entry fails the build: a skipped entry would leave a stale bundle looking current.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

// Bundled CommonJS dependencies call require() for Node built-ins; ESM output has no require.
const banner = {
  js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
};

// The action implements the runner's ID-token request itself (src/action/id-token.ts). Declaring
// these modules free of side effects lets esbuild drop @actions/core's unused getIDToken and
// platform helpers, and with them @actions/http-client and undici (~400 KiB, most of the start-up).
const unusedToolkitParts =
  /^(\.\/oidc-utils\.js|\.\/platform\.js|@actions\/http-client(\/.*)?|@actions\/exec|@actions\/io(\/.*)?)$/;
// Likewise @actions/github: the action uses its run context only, and its root module imports
// Octokit (./utils.js, with undici, ~540 KiB) solely for getOctokit.
const octokitOfActionsGithub = /[\\/]@actions[\\/]github[\\/]lib[\\/]github\.js$/;
const dropUnusedToolkitParts = {
  name: 'drop-unused-toolkit-parts',
  setup(b) {
    const sideEffectFree = async (args) => {
      if (args.pluginData?.resolving) return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { resolving: true },
      });
      return resolved.errors.length ? undefined : { path: resolved.path, sideEffects: false };
    };
    b.onResolve({ filter: unusedToolkitParts }, sideEffectFree);
    b.onResolve({ filter: /^\.\/utils\.js$/ }, (args) =>
      octokitOfActionsGithub.test(args.importer) ? sideEffectFree(args) : undefined,
    );
  },
};

// Node 24's ESM loader reads every export of a built-in module it imports, and node:http's exports
// include lazy getters (WebSocket, CloseEvent, MessageEvent) that load undici: about 50 ms of each
// step's start (bench/, section 4). require() reads none of them, so the action's bundles take every
// built-in through require() (the banner's).
const builtinsThroughRequire = {
  name: 'builtins-through-require',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (!isBuiltin(args.path)) return undefined;
      if (args.namespace === 'builtin') return { path: args.path, external: true };
      return { path: args.path, namespace: 'builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/** @type {import('esbuild').BuildOptions} */
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner,
  legalComments: 'none',
  logLevel: 'warning',
};

const targets = {
  action: {
    dir: 'dist',
    minify: true,
    plugins: [builtinsThroughRequire],
    entries: [
      ['src/action/main.ts', 'dist/main/index.js'],
      ['src/action/post.ts', 'dist/post/index.js'],
      ['src/action/credential.ts', 'dist/credential/index.js'],
    ],
  },
  // The broker's metafile (which npm packages went into the bundle) feeds the image's SBOM.
  broker: {
    dir: 'build/broker',
    minify: false,
    entries: [['src/broker/index.ts', 'build/broker/index.js']],
    metafile: 'build/broker/meta.json',
  },
};

const name = process.argv[2] ?? 'action';
const target = targets[name];
if (!target) {
  process.stderr.write(`unknown build target "${name}"; one of: ${Object.keys(targets).join(', ')}\n`);
  process.exit(2);
}
const missing = target.entries.filter(([entry]) => !existsSync(entry)).map(([entry]) => entry);
if (missing.length > 0) {
  process.stderr.write(`build ${name}: missing entry point(s): ${missing.join(', ')}\n`);
  process.exit(1);
}

const results = await Promise.all(
  target.entries.map(([entry, outfile]) =>
    build({
      ...common,
      entryPoints: [entry],
      outfile,
      plugins: [dropUnusedToolkitParts, ...(target.plugins ?? [])],
      minify: target.minify,
      metafile: Boolean(target.metafile),
      write: false,
    }),
  ),
);

// Each file is written beside its place and renamed over it: a process starting the bundle while
// another build runs (the image build rebuilds the broker while tests run it) reads the old file or
// the new one, never a half-written one.
const TEMP_SUFFIX = /\.\d+\.tmp$/;
function writeAtomically(path, contents) {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, path);
}
for (const result of results)
  for (const file of result.outputFiles) writeAtomically(file.path, file.contents);
if (target.metafile) writeAtomically(target.metafile, JSON.stringify(results[0]?.metafile));

// Anything else in the output directory is a leftover of an older layout: removing it lets
// check-dist see it (as a deletion) instead of shipping it.
const outputs = new Set([...target.entries.map(([, outfile]) => outfile), target.metafile].filter(Boolean));
for (const e of readdirSync(target.dir, { withFileTypes: true, recursive: true })) {
  const path = join(e.parentPath, e.name);
  // A concurrent build's file on its way in is not a leftover.
  if (e.isFile() && !outputs.has(path) && !TEMP_SUFFIX.test(e.name)) rmSync(path);
}
