// What cluster_node.mjs and cluster_emitter.mjs share: the options that say which adapter and where
// its cluster is, and binary values as {"$bin": base64} (printed values and given arguments).

// parseArgs options.
export const CLUSTER_OPTIONS = {
  adapter: { type: "string" }, // redis | postgres
  // redis: the key (its channels' prefix) and the server
  key: { type: "string", default: "socket.io" },
  redis: { type: "string", default: "redis://127.0.0.1:6379" },
  // postgres: the channels' prefix, the attachments table and the server
  prefix: { type: "string", default: "socket.io" },
  table: { type: "string", default: "socket_io_attachments" },
  dsn: { type: "string", default: "postgresql://postgres@127.0.0.1:5432/test" },
};

export const js = (v) => {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(js);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, js(x)]));
  return v;
};

export const fromJs = (v) => {
  if (Array.isArray(v)) return v.map(fromJs);
  if (v && typeof v === "object") {
    if (Object.keys(v).length === 1 && typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)]));
  }
  return v;
};
