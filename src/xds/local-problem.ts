// A problem found in the local config file, and how it is printed (config.md "Beyond" (a)). Apart
// from local-file.ts so that the daemon's main thread can word problems without loading `yaml`.

export interface LocalConfigProblem {
  file: string;
  line: number;
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

/** `local.yaml:42 policies[1].rules[0][0][0].destinationPorts[0]: 70000 is not a u16` */
export function formatProblem(p: LocalConfigProblem): string {
  return p.path ? `${p.file}:${p.line} ${p.path}: ${p.message}` : `${p.file}:${p.line}: ${p.message}`;
}

/** One error at line 0 (the file as a whole: it could not be read or parsed at all). */
export function fileProblem(file: string, message: string): LocalConfigProblem {
  return { file, line: 0, path: '', message, severity: 'error' };
}
