// istio.workload.Address (spec/xds.md §5): `oneof type { Workload workload = 1; Service service = 2 }`.
import { err, ok, type Result } from '../core/errors.js';
import type { Service, Workload } from '../state/model.js';
import { decodeService } from './decode-service.js';
import { decodeWorkload } from './decode-workload.js';
import type { ProtoAddress } from './decode-types.js';

export type DecodedAddress =
  | { readonly kind: 'workload'; readonly workload: Workload }
  | { readonly kind: 'service'; readonly service: Service };

export function decodeAddress(a: ProtoAddress): Result<DecodedAddress, string> {
  if (a == null || typeof a !== 'object') return err('address missing');
  if (a.workload != null) {
    const w = decodeWorkload(a.workload);
    return w.ok ? ok({ kind: 'workload', workload: w.value }) : w;
  }
  if (a.service != null) {
    const s = decodeService(a.service);
    return s.ok ? ok({ kind: 'service', service: s.value }) : s;
  }
  return err('Address has neither workload nor service');
}
