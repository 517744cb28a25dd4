// The page: tabs (keyboard: arrows, Home, End), the URL as the state of the shown tab
// (?task=<route name>&model=<id>&inputs=<text>&<parameter>=<value>...&run=1), and start-up.
import { AttentionTab } from "./attention.js";
import { ClassifyTab } from "./classify.js";
import { GenerateTab } from "./generate.js";
import { ImagesTab } from "./images.js";
import { ModelsTab } from "./models.js";
import { TrainTab } from "./train.js";
import { TranslateTab } from "./translate.js";
import { loadCatalog, onModelsChanged, refreshModels, runtime } from "./runtime.js";

const tabs = [new ModelsTab(), new ClassifyTab(), new GenerateTab(), new TranslateTab(), new ImagesTab(), new AttentionTab(), new TrainTab()];
const buttons = tabs.map(tab => document.getElementById(`tab-${tab.name}`));
let current = tabs[0];

function tabFor(query) {
  if (query.has("task")) return tabs.find(tab => tab.accepts(query.get("task")));
  return tabs.find(tab => tab.name === query.get("tab"));
}

function writeUrl() {
  const query = current.stateQuery().toString();
  history.replaceState(null, "", `?${query}`);
  for (const link of current.panel.querySelectorAll("a.share")) link.href = `?${query}&run=1`;
}

function select(tab, focus = false) {
  current = tab;
  tabs.forEach((each, index) => {
    const chosen = each === tab;
    buttons[index].setAttribute("aria-selected", String(chosen));
    buttons[index].tabIndex = chosen ? 0 : -1;
    each.panel.hidden = !chosen;
  });
  if (focus) buttons[tabs.indexOf(tab)].focus();
  writeUrl();
}

function wireTabs() {
  buttons.forEach((button, index) => button.addEventListener("click", () => select(tabs[index])));
  document.querySelector("[role=tablist]").addEventListener("keydown", event => {
    const at = tabs.indexOf(current);
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    select(tabs[(next + tabs.length) % tabs.length], true);
  });
  for (const tab of tabs) {
    for (const type of ["input", "change"]) tab.panel.addEventListener(type, () => { if (tab === current) writeUrl(); });
  }
}

function describeRuntime() {
  const failed = runtime.models.filter(model => model.state === "failed").length;
  const version = runtime.version ? ` caikit-genai ${runtime.version}:` : "";
  document.getElementById("runtime-info").textContent =
    `${version} ${runtime.models.length} models${failed ? `, ${failed} failed to load` : ""}; training ${runtime.catalog.training ? "on" : "off"}.`.trim();
}

async function start() {
  wireTabs();
  const query = new URLSearchParams(location.search);
  try {
    await loadCatalog();
    onModelsChanged(() => {
      for (const tab of tabs) tab.refresh();
      describeRuntime();
    });
    await refreshModels();
  } catch (err) {
    const box = document.getElementById("page-error");
    box.textContent = `The playground could not read what this runtime serves: ${err.shown ?? err.message}`;
    box.hidden = false;
  }
  const tab = tabFor(query) ?? tabs[0];
  tab.applyState(query);
  select(tab);
  document.body.dataset.ready = "true";
  if (query.get("run") === "1") await tab.run();
}

start();
