// Classify: text -> labels, each with its score as a bar.
import { postJson } from "./api.js";
import { TaskTab, element } from "./forms.js";

export class ClassifyTab extends TaskTab {
  constructor() {
    super("classify", ["text-classification"]);
    this.output = document.getElementById("classify-output");
  }

  async run() {
    await this.guarded(async () => {
      const result = await postJson(this.route(), this.request());
      this.output.replaceChildren(scoreList(result.results || []));
    });
  }
}

function scoreList(results) {
  const list = element("ol", { className: "scores", "aria-label": "Labels by score" });
  for (const { label, score } of results) {
    const bar = element("span", {
      className: "bar", role: "meter", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "1", "aria-valuenow": String(score),
    }, element("span"));
    bar.style.setProperty("--score", String(score));
    list.append(element("li", { "data-label": label, "data-score": String(score) },
      element("span", { className: "label", text: label }), bar, element("span", { className: "score", text: score.toFixed(3) })));
  }
  return list;
}
