// Translate: one text (translation) or a list, one per line (translation-list); each source
// beside its translation.
import { postJson } from "./api.js";
import { TaskTab, element } from "./forms.js";

const ONE = "translation", LIST = "translation-list";

export class TranslateTab extends TaskTab {
  constructor() {
    super("translate", [ONE, LIST]);
    this.output = document.getElementById("translate-output");
    for (const radio of this.form.querySelectorAll("input[name=mode]")) radio.addEventListener("change", () => this.renderParams());
  }

  get routeName() {
    return this.form.querySelector("input[name=mode]:checked").value;
  }

  set routeName(value) {
    this.form.querySelector(`input[name=mode][value="${value === LIST ? LIST : ONE}"]`).checked = true;
  }

  accepts(task) {
    return task === ONE || task === LIST;
  }

  texts() {
    return this.routeName === LIST ? this.inputs.value.split(/\r?\n/).filter(line => line.trim() !== "") : [this.inputs.value];
  }

  applyState(query) {
    if (query.has("task")) this.routeName = query.get("task");
    super.applyState(query);
  }

  stateQuery() {
    const query = super.stateQuery();
    if (this.routeName === LIST) {
      query.delete("inputs");
      for (const text of this.texts()) query.append("inputs", text);
    }
    return query;
  }

  async run() {
    await this.guarded(async () => {
      const sources = this.texts();
      const inputs = this.routeName === LIST ? sources : sources[0];
      const answer = await postJson(this.route(), this.request(inputs));
      this.output.replaceChildren(sideBySide(sources, this.routeName === LIST ? answer.results : [answer]));
    });
  }
}

function sideBySide(sources, results) {
  const head = element("tr", {}, ...["#", "Source", "Translation", "Tokens in / out", "Finish"].map(text => element("th", { scope: "col", text })));
  const rows = results.map((result, index) => element("tr", { "data-index": String(index) },
    element("td", { text: String(index + 1) }),
    element("td", { className: "source", text: sources[index] ?? "" }),
    element("td", { className: "translation", text: result.translation_text ?? "" }),
    element("td", { text: `${result.input_token_count ?? ""} / ${result.generated_tokens ?? ""}` }),
    element("td", { text: result.finish_reason ?? "" })));
  return element("table", { className: "translations" }, element("thead", {}, head), element("tbody", {}, ...rows));
}
