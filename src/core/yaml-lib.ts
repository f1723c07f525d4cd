// The full `yaml` package, loaded on first use. The daemon's usual paths never need it (a valid
// local config goes through the reader of xds/fast-yaml.ts; the full parser runs for what that
// reader does not take and to word every error), and loading it costs several MB of resident
// memory (issue 7: idle RSS). `yaml` ships a CommonJS build, so a synchronous
// require keeps the callers synchronous.
import { createRequire } from 'node:module';

type YamlModule = typeof import('yaml');

let lib: YamlModule | undefined;

export function yamlLib(): YamlModule {
  lib ??= createRequire(import.meta.url)('yaml') as YamlModule;
  return lib;
}
