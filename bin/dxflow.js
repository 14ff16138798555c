#!/usr/bin/env node
// The dxflow command. Node 24 runs the TypeScript sources directly (type stripping); no build step.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`dxflow needs Node.js 24 or newer (this is ${process.version}). Run it with "npx dxflow" inside the project, which uses the Node 24 installed by "npm ci".\n`);
  process.exit(1);
}
await import('../src/cli/main.ts');
