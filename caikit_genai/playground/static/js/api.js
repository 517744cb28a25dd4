// The runtime's HTTP API, as the page calls it: relative URLs only (a Route's path prefix
// stays in front), errors as ApiError carrying the server's status and message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }

  // What the user reads: the server's own message, with what a status means for them.
  get shown() {
    if (this.status === 503) return `503 (busy or a backend is down: try again in a moment): ${this.message}`;
    if (this.status === 0) return this.message;
    return `${this.status}: ${this.message}`;
  }
}

// caikit answers {details, code}; FastAPI {detail}; uvicorn's 503 plain text.
function messageOf(text, status) {
  try {
    const body = JSON.parse(text);
    let message = body.details ?? body.detail ?? text;
    if (Array.isArray(message)) message = message.map(item => item.msg ?? JSON.stringify(item)).join("; ");
    return typeof message === "string" ? message : JSON.stringify(message);
  } catch {
    return text.trim() || `HTTP ${status}`;
  }
}

async function errorFrom(response) {
  return new ApiError(response.status, messageOf(await response.text(), response.status));
}

async function send(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `The runtime did not answer (${err.message}): is it still running?`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson(path, signal) {
  return (await send(path, { headers: { Accept: "application/json" }, signal })).json();
}

export async function postJson(path, body, signal) {
  const options = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal };
  return (await send(path, options)).json();
}

export async function deleteJson(path) {
  return (await send(path, { method: "DELETE", headers: { Accept: "application/json" } })).json();
}

// A POST answered with Server-Sent Events: onMessage(data) per `message` event; an `error`
// event (caikit sends one when the model refuses mid-stream) rejects with its message.
// Aborting `signal` closes the connection, which ends the server's generation.
export async function postStream(path, body, onMessage, signal) {
  const options = {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  };
  const response = await send(path, options);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const events = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const [event, data] of events.feed(value)) {
      if (event === "error") {
        let status = 500;
        try { status = JSON.parse(data).code || 500; } catch { /* keep 500 */ }
        throw new ApiError(status, messageOf(data, status));
      }
      onMessage(JSON.parse(data));
    }
  }
}

// The event-stream format: lines end with CRLF, LF or CR; `event:` names an event, `data:`
// lines add to its data, a blank line dispatches it, lines starting with ":" are comments.
class SseParser {
  constructor() {
    this.buffer = "";
    this.event = "message";
    this.data = [];
  }

  *feed(chunk) {
    this.buffer += chunk;
    for (;;) {
      const end = /\r\n|\r|\n/.exec(this.buffer);
      if (!end || (end[0] === "\r" && end.index + 1 === this.buffer.length)) return;
      const line = this.buffer.slice(0, end.index);
      this.buffer = this.buffer.slice(end.index + end[0].length);
      if (line === "") {
        if (this.data.length) yield [this.event, this.data.join("\n")];
        this.event = "message";
        this.data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") this.event = value;
        else if (field === "data") this.data.push(value);
      }
    }
  }
}
