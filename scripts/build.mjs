// Bundles the committed dist/ entry points with esbuild (deterministic output, no absolute paths).
//   dist/main/index.js           the action's main step (kept small: no Kubernetes client)
//   dist/post/index.js           the action's post step
//   dist/post/direct-revoke.js   loaded by post only when the broker cannot be reached (client-node)
//   dist/broker/index.js         the broker
import { existsSync } from 'node:fs';
import { build } from 'esbuild';

// Bundled CommonJS dependencies call require() for Node built-ins; ESM output has no require.
const banner = {
  js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
};

// The post step imports its direct-revoke path lazily; keep it a separate file at run time.
const keepDirectRevokeSeparate = {
  name: 'keep-direct-revoke-separate',
  setup(b) {
    b.onResolve({ filter: /^\.\/direct-revoke\.js$/ }, (args) =>
      args.importer.endsWith('post-run.ts') || args.importer.endsWith('post.ts')
        ? { path: args.path, external: true }
        : undefined,
    );
  },
};

// The action implements the runner's ID-token request itself (src/action/id-token.ts). Declaring
// these modules free of side effects lets esbuild drop @actions/core's unused getIDToken and
// platform helpers, and with them @actions/http-client and undici (~400 KiB, most of the start-up).
const unusedToolkitParts =
  /^(\.\/oidc-utils\.js|\.\/platform\.js|@actions\/http-client(\/.*)?|@actions\/exec|@actions\/io(\/.*)?)$/;
const dropUnusedToolkitParts = {
  name: 'drop-unused-toolkit-parts',
  setup(b) {
    b.onResolve({ filter: unusedToolkitParts }, async (args) => {
      if (args.pluginData?.resolving) return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { resolving: true },
      });
      return resolved.errors.length ? undefined : { path: resolved.path, sideEffects: false };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner,
  legalComments: 'none',
  logLevel: 'warning',
};

const entries = [
  ['src/action/main.ts', 'dist/main/index.js'],
  ['src/action/post.ts', 'dist/post/index.js'],
  ['src/action/direct-revoke.ts', 'dist/post/direct-revoke.js'],
  ['src/broker/index.ts', 'dist/broker/index.js'],
];

await Promise.all(
  entries
    .filter(([entry]) => existsSync(entry))
    .map(([entry, outfile]) =>
      build({
        ...common,
        entryPoints: [entry],
        outfile,
        plugins: [keepDirectRevokeSeparate, dropUnusedToolkitParts],
        minify: outfile.startsWith('dist/main') || outfile === 'dist/post/index.js',
      }),
    ),
);
