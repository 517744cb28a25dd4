// Training data pasted or uploaded, read as the train API takes it: CSV with a header row, JSON
// Lines, a JSON array, or (for modules that train on plain text) the text itself.

export class DataError extends Error {}

// RFC 4180: fields separated by commas, quoted with "", "" inside quotes is one quote.
export function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"' && field === "") {
      quoted = true;
    } else if (char === ",") {
      row.push(field); field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i++;
      row.push(field); field = "";
      if (row.some(value => value !== "")) rows.push(row);
      row = [];
    } else {
      field += char;
    }
  }
  if (quoted) throw new DataError("the CSV ends inside a quoted field");
  row.push(field);
  if (row.some(value => value !== "")) rows.push(row);
  return rows;
}

function jsonLines(text) {
  return text.split(/\r?\n/).map((line, index) => [line, index + 1]).filter(([line]) => line.trim()).map(([line, number]) => {
    try {
      return JSON.parse(line);
    } catch (err) {
      throw new DataError(`line ${number} is not JSON: ${err.message}`);
    }
  });
}

function detectFormat(text, element) {
  const start = text.trimStart()[0];
  if (start === "[") return "json";
  if (start === "{" || start === '"') return "jsonl";
  return element.type === "object" ? "csv" : "text";
}

// An example as the train API's data object wants it: known fields only, images as {image_data}.
function example(record, element, where) {
  if (element.type !== "object") {
    if (typeof record === "string") return record;
    if (record && typeof record.text === "string") return record.text;
    throw new DataError(`${where}: expected a string (or an object with "text")`);
  }
  if (!record || typeof record !== "object" || Array.isArray(record)) throw new DataError(`${where}: expected an object with ${fieldNames(element)}`);
  const out = {};
  for (const [name, value] of Object.entries(record)) {
    const field = element.fields.find(f => f.name === name);
    if (!field) throw new DataError(`${where}: "${name}" is not a field of this module's examples: use ${fieldNames(element)}`);
    if (value === "" || value === null) continue;
    out[name] = field.type === "image" && typeof value === "string" ? { image_data: value } : value;
  }
  return out;
}

export function fieldNames(element) {
  return element.fields.map(field => field.name).join(", ");
}

export function describeData(element) {
  if (element.type === "object") {
    return `CSV with a header row naming ${fieldNames(element)}, or JSON Lines of objects with those fields.`
      + (element.fields.some(f => f.type === "image") ? " Images as base64 PNG/JPEG, or paths in the runtime's training data dir." : "");
  }
  return "Plain text (one training text), or JSON Lines of strings (one text each).";
}

// The `data` list of a train request's json data stream.
export function readExamples(text, format, element) {
  if (!text.trim()) throw new DataError("paste or upload some training data first");
  const chosen = format === "auto" ? detectFormat(text, element) : format;
  if (chosen === "text") {
    if (element.type === "object") throw new DataError(`this module trains on examples with ${fieldNames(element)}: use CSV or JSON Lines`);
    return [text];
  }
  if (chosen === "json" || chosen === "jsonl") {
    let records;
    if (chosen === "json") {
      try { records = JSON.parse(text); } catch (err) { throw new DataError(`the data is not JSON: ${err.message}`); }
      if (!Array.isArray(records)) throw new DataError("a JSON document must be a list of examples");
    } else {
      records = jsonLines(text);
    }
    return records.map((record, index) => example(record, element, `example ${index + 1}`));
  }
  const [header, ...rows] = parseCsv(text);
  if (!rows.length) throw new DataError("the CSV needs a header row and at least one example");
  if (element.type !== "object") return rows.map(row => row[0]);
  return rows.map((row, index) => example(Object.fromEntries(header.map((name, column) => [name.trim(), row[column] ?? ""])), element, `CSV row ${index + 2}`));
}
