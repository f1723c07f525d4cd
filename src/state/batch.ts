// The one way config sources (local file, xDS) change state: a batch of upserts and removals per
// resource type, applied synchronously as a unit (docs/design.md §5). Keys follow xds.md §3.
import type { Authorization } from '../policy/model.js';
import type { Service, Workload } from './model.js';

export interface StateBatch {
  workloads?: { upsert: readonly Workload[]; remove: readonly string[] /* uids */ };
  services?: { upsert: readonly Service[]; remove: readonly string[] /* "<ns>/<hostname>" */ };
  policies?: { upsert: readonly Authorization[]; remove: readonly string[] /* "<ns>/<name>" */ };
}

export interface StateSink {
  apply(batch: StateBatch): void;
}
