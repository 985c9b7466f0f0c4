// medsam2 serve: the JSON API as the page uses it (same origin; the token travels as a cookie).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || `HTTP ${response.status}`);
  return data;
}

export const api = {
  volume: () => call("GET", "/api/volume"),
  objects: () => call("GET", "/api/objects"),
  addObject: (fields) => call("POST", "/api/objects", fields || {}),
  patchObject: (id, fields) => call("PATCH", `/api/objects/${id}`, fields),
  deleteObject: (id) => call("DELETE", `/api/objects/${id}`, {}),
  prompt: (id, prompt) => call("POST", `/api/objects/${id}/prompts`, prompt),
  undo: (id) => call("POST", "/api/undo", { object: id }),
  reset: () => call("POST", "/api/reset", {}),
  cancel: () => call("POST", "/api/cancel", {}),
  save: () => call("POST", "/api/save", {}),
  resume: (go) => call("POST", "/api/resume", { continue: go }),
};

// POST /api/propagate and hand each server-sent event to onEvent; resolves with the last one.
export async function propagate(body, onEvent) {
  const response = await fetch("/api/propagate", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(response.status, data.error || `HTTP ${response.status}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const line = block.split("\n").find((l) => l.startsWith("data: "));
      if (line) {
        last = JSON.parse(line.slice(6));
        onEvent(last);
      }
    }
  }
  return last;
}
