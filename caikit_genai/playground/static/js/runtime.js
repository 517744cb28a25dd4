// What the runtime serves: its catalog (modules, their task routes, train routes, parameters)
// and its models with their state (served, loading, failed and why), shared by every tab.
import { getJson } from "./api.js";

export const runtime = { catalog: { modules: [], training: false }, models: [], version: "" };
const listeners = [];

export function onModelsChanged(listener) {
  listeners.push(listener);
}

export async function loadCatalog() {
  runtime.catalog = await getJson("playground/api/catalog");
  try {
    const info = await getJson("info/version");
    runtime.version = info.python_packages?.caikit_genai ?? "";
  } catch {
    runtime.version = "";  // the version is decoration: the page works without it
  }
}

export function moduleById(moduleId) {
  return runtime.catalog.modules.find(module => module.module_id === moduleId);
}

function described(model) {
  const metadata = model.metadata || {};
  const module = moduleById(model.module_id ?? model.configured_module_id);
  let state = model.loaded ? "served" : "loading";
  if (metadata.load_error) state = "failed";
  return {
    id: model.name,
    moduleName: module?.name ?? model.module_metadata?.name ?? "",
    state,
    reason: metadata.load_error ?? metadata.swap_error ?? "",
    retryAfter: metadata.load_retry_after ?? "",
    quick: Boolean(metadata.quick),
    tasks: module?.tasks ?? [],
  };
}

// caikit names a model's module only once a request has loaded it: a model the lazy loader has
// just listed (a training's output) is looked up in its config.yml, so the pickers offer it.
async function withModules(models) {
  await Promise.all(models.filter(model => !model.module_id && !model.metadata?.load_error).map(async model => {
    try {
      model.configured_module_id = (await getJson(`playground/api/models/${encodeURIComponent(model.name)}/module`)).module_id;
    } catch {
      model.configured_module_id = null;  // no readable config.yml: caikit's own load will say why
    }
  }));
  return models;
}

export async function refreshModels() {
  const info = await getJson("info/models");
  runtime.models = (await withModules(info.models || [])).map(described).sort((a, b) => a.id.localeCompare(b.id));
  for (const listener of listeners) listener();
  return runtime.models;
}

export function taskEntry(model, routeName) {
  return model?.tasks.find(task => task.route_name === routeName);
}

// Models a tab can call on one of its routes: served or still loading (a request waits for the load).
export function modelsFor(routeNames) {
  return runtime.models.filter(model => model.state !== "failed" && routeNames.some(route => taskEntry(model, route)));
}

export function findModel(id) {
  return runtime.models.find(model => model.id === id);
}
