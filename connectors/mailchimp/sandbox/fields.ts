/**
 * Mailchimp's `fields` / `exclude_fields` query parameters: comma-separated dotted paths
 * ("members.email_address,total_items"); arrays apply the rest of the path to each element.
 */
type Tree = Map<string, Tree | true>;

function tree(spec: string): Tree {
  const root: Tree = new Map();
  for (const path of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    let node = root;
    const parts = path.split('.');
    parts.forEach((part, i) => {
      if (i === parts.length - 1) node.set(part, true);
      else {
        const next = node.get(part);
        if (next === true) return;
        const child: Tree = next ?? new Map();
        node.set(part, child);
        node = child;
      }
    });
  }
  return root;
}

function pick(value: unknown, t: Tree): unknown {
  if (Array.isArray(value)) return value.map((v) => pick(v, t));
  if (typeof value !== 'object' || value === null) return value;
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of t) {
    if (!(k in src)) continue;
    out[k] = sub === true ? src[k] : pick(src[k], sub);
  }
  return out;
}

function drop(value: unknown, t: Tree): unknown {
  if (Array.isArray(value)) return value.map((v) => drop(v, t));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [k, sub] of t) {
    if (!(k in out)) continue;
    if (sub === true) delete out[k];
    else out[k] = drop(out[k], sub);
  }
  return out;
}

export function projectFields(body: unknown, fields: string | null, exclude: string | null): unknown {
  let out = body;
  if (fields) out = pick(out, tree(fields));
  if (exclude) out = drop(out, tree(exclude));
  return out;
}
