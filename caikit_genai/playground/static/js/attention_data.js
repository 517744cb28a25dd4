// Attention results as the API packs them: each kind's matrices [layers, heads or 1, queries,
// keys] in one base64 field, float16 (<f2), float32 (<f4) or uint8 (u1, scaled per row).

function bytesOf(base64) {
  const raw = atob(base64 || "");
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function float16(bits) {
  const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function unpack(group) {
  const bytes = bytesOf(group.weights), view = new DataView(bytes.buffer);
  const count = group.shape.reduce((a, b) => a * b, 1), keys = group.shape[3];
  const values = new Float32Array(count);
  if (group.dtype === "<f2") {
    for (let i = 0; i < count; i++) values[i] = float16(view.getUint16(2 * i, true));
  } else if (group.dtype === "<f4") {
    for (let i = 0; i < count; i++) values[i] = view.getFloat32(4 * i, true);
  } else if (group.dtype === "u1") {
    const scales = new DataView(bytesOf(group.row_scales).buffer);
    for (let i = 0; i < count; i++) values[i] = bytes[i] * scales.getFloat32(4 * Math.floor(i / keys), true);
  } else {
    throw new Error(`unknown attention dtype ${group.dtype}`);
  }
  return values;
}

// One attention kind, decoded: its labels and matrices, and the tokens on each side.
export function decodeGroups(result) {
  const source = (result.tokens || []).map(token => token.text);
  const target = (result.target_tokens || []).map(token => token.text);
  const sides = { encoder: [source, source], decoder: [target, target], cross: [target, source] };
  return (result.attentions || []).map(group => {
    const [layers, headsAxis, queries, keys] = group.shape;
    const values = unpack(group);
    return {
      kind: group.kind,
      aggregate: group.aggregate,
      layers: group.layers,
      columns: group.aggregate === "none" ? group.heads.map(head => `head ${head}`) : [group.aggregate],
      shape: { layers, headsAxis, queries, keys },
      queryTokens: sides[group.kind]?.[0] ?? [],
      keyTokens: sides[group.kind]?.[1] ?? [],
      at: (layer, head, query, key) => values[((layer * headsAxis + head) * queries + query) * keys + key],
    };
  });
}
