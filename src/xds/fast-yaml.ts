// The fast path of local-file.ts (issue 7: a 10,000-workload file in a few hundred ms): js-yaml
// (YAML 1.2 core schema, as the `yaml` package's default) turns the text into plain values, and
// these are wrapped in light nodes that the `yaml` package's isMap / isSeq / isScalar recognise,
// without source positions, so local-file.ts runs its one validator over them. Anything js-yaml
// refuses (several documents, duplicate keys, ...) answers null and the caller parses with the
// `yaml` package; so does the caller whenever validation reports a problem, so every message
// (with its line) still comes from the full parser. Measured on a 2.4 MB file: `yaml` ~2.6 s,
// js-yaml ~0.25 s.
import jsyaml from 'js-yaml';

const NODE_TYPE = Symbol.for('yaml.node.type');
const MAP = Symbol.for('yaml.map');
const SEQ = Symbol.for('yaml.seq');
const SCALAR = Symbol.for('yaml.scalar');
const PAIR = Symbol.for('yaml.pair');

class FastScalar {
  declare readonly [NODE_TYPE]: symbol;
  constructor(readonly value: string | number | boolean | null, readonly source: string) {}
}
class FastPair {
  declare readonly [NODE_TYPE]: symbol;
  constructor(readonly key: FastScalar, readonly value: FastNode) {}
}
class FastMap {
  declare readonly [NODE_TYPE]: symbol;
  readonly items: FastPair[] = [];
}
class FastSeq {
  declare readonly [NODE_TYPE]: symbol;
  readonly items: FastNode[] = [];
}
Object.defineProperty(FastScalar.prototype, NODE_TYPE, { value: SCALAR });
Object.defineProperty(FastPair.prototype, NODE_TYPE, { value: PAIR });
Object.defineProperty(FastMap.prototype, NODE_TYPE, { value: MAP });
Object.defineProperty(FastSeq.prototype, NODE_TYPE, { value: SEQ });

export type FastNode = FastScalar | FastMap | FastSeq;

/**
 * js-yaml reads `80.0` as the number 80, where the full parser keeps it a float (and the
 * validator rejects it as a port). Floats therefore resolve to a marker that sends the file to
 * the full parser.
 */
const FLOAT = Symbol('float');
// compiledImplicit is js-yaml's resolved type list (not in its typings).
const CORE_FLOAT = (jsyaml.CORE_SCHEMA as unknown as { compiledImplicit: Array<{ tag: string; resolve: (d: string) => boolean }> }).compiledImplicit.find((t) => t.tag === 'tag:yaml.org,2002:float')!;
const FAST_SCHEMA = jsyaml.CORE_SCHEMA.extend({
  implicit: [new jsyaml.Type('tag:yaml.org,2002:float', { kind: 'scalar', resolve: (d: string) => CORE_FLOAT.resolve(d), construct: () => FLOAT })],
});

function toNode(v: unknown): FastNode | null {
  if (v === FLOAT) return null;
  if (v === null || v === undefined) return new FastScalar(null, '');
  if (typeof v === 'string') return new FastScalar(v, v);
  if (typeof v === 'number') {
    // Floats, infinities and NaN are left to the full parser (its messages name them exactly).
    if (!Number.isSafeInteger(v)) return null;
    return new FastScalar(v, String(v));
  }
  if (typeof v === 'boolean') return new FastScalar(v, String(v));
  if (Array.isArray(v)) {
    const seq = new FastSeq();
    for (const item of v) {
      const n = toNode(item);
      if (!n) return null;
      seq.items.push(n);
    }
    return seq;
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const map = new FastMap();
    for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
      const n = toNode(item);
      if (!n) return null;
      map.items.push(new FastPair(new FastScalar(k, k), n));
    }
    return map;
  }
  return null; // anything else (e.g. a binary or timestamp type) → full parser
}

/**
 * The single document of `text` as yaml-compatible nodes, or null when js-yaml refuses it or it
 * holds values the fast path leaves to the full parser. An empty document also answers null.
 */
export function fastParseYaml(text: string): FastNode | null {
  let value: unknown;
  try {
    value = jsyaml.load(text, { schema: FAST_SCHEMA });
  } catch {
    return null;
  }
  if (value === undefined || value === null) return null;
  return toNode(value);
}
