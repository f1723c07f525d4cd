// The full `yaml` package, loaded on first use by the main thread's rare YAML readers (the config
// file of `run --config`, /config_dump's staticConfig). Loading it costs several MB of resident
// memory (issue 7: idle RSS); the local config file is parsed on a worker thread
// (xds/local-parse.ts), which loads it there. `yaml` ships a CommonJS build, so a synchronous
// require keeps the callers synchronous.
import { createRequire } from 'node:module';

type YamlModule = typeof import('yaml');

let lib: YamlModule | undefined;

export function yamlLib(): YamlModule {
  lib ??= createRequire(import.meta.url)('yaml') as YamlModule;
  return lib;
}
