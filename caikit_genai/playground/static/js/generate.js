// Generate: every TextGenerationTask model (char, translator, TGIS), unary or streamed over SSE;
// Stop aborts the request, and closing the connection ends the server's generation.
import { postJson, postStream } from "./api.js";
import { TaskTab } from "./forms.js";

const UNARY = "text-generation", STREAMING = `server-streaming-${UNARY}`;

export class GenerateTab extends TaskTab {
  constructor() {
    super("generate", [UNARY]);
    this.output = document.getElementById("generate-output");
    this.status = document.getElementById("generate-status");
    this.stopButton = document.getElementById("generate-stop");
    this.submitButton = this.form.querySelector("button[type=submit]");
    this.streamBox = document.getElementById("generate-stream");
    this.controller = null;
    this.stopButton.addEventListener("click", () => this.controller?.abort());
    this.modelSelect.addEventListener("change", () => this.offerStreaming());
  }

  get streamingRouteName() {
    return this.entry()?.streaming_route?.split("/").pop() ?? STREAMING;
  }

  accepts(task) {
    return task === UNARY || task === STREAMING;
  }

  offerStreaming() {
    const streams = Boolean(this.entry()?.streaming_route);
    this.streamBox.disabled = !streams;
    if (!streams) this.streamBox.checked = false;
  }

  refresh() {
    super.refresh();
    this.offerStreaming();
  }

  applyState(query) {
    super.applyState(query);
    if (query.has("task")) this.streamBox.checked = query.get("task") !== UNARY;
    this.offerStreaming();
  }

  stateQuery() {
    const query = super.stateQuery();
    if (this.streamBox.checked) query.set("task", this.streamingRouteName);
    return query;
  }

  show(state, text) {
    this.output.dataset.state = state;
    this.status.textContent = text;
  }

  async run() {
    if (this.controller) return;
    const controller = (this.controller = new AbortController());
    const streaming = this.streamBox.checked;
    this.stopButton.disabled = false;
    this.submitButton.disabled = true;
    this.output.replaceChildren();
    this.show(streaming ? "streaming" : "running", streaming ? "Streaming…" : "Generating…");
    await this.guarded(async () => {
      try {
        const result = streaming ? await this.stream(controller.signal) : await this.generate(controller.signal);
        const seed = result.seed === undefined || result.seed === null ? "" : `, seed ${result.seed}`;
        this.show("done", `${result.generated_tokens ?? 0} tokens, finish reason ${result.finish_reason ?? "unknown"}${seed}`);
      } catch (err) {
        if (err.name === "AbortError") {
          this.show("stopped", `Stopped after ${this.output.textContent.length} characters: the server ended its generation.`);
          return;
        }
        this.show("error", "");
        throw err;
      }
    });
    this.controller = null;
    this.stopButton.disabled = true;
    this.submitButton.disabled = false;
  }

  async generate(signal) {
    const result = await postJson(this.route(), this.request(), signal);
    this.output.textContent = result.generated_text ?? "";
    return result;
  }

  async stream(signal) {
    let details = {};
    await postStream(this.route(UNARY, true), this.request(), message => {
      this.output.append(message.generated_text ?? "");
      details = message.details ?? details;
      this.status.textContent = `Streaming… ${details.generated_tokens ?? ""} tokens`;
    }, signal);
    return details;
  }
}
