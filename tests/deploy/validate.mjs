// validate.mjs [FILE.yaml...]: checks the Kubernetes manifests of deploy/kubernetes/ (or the files
// given) offline, against the Kubernetes API schemas shipped in the npm package kubernetes-models
// (generated from the Kubernetes OpenAPI spec), in three passes:
//
//   1. YAML: every file parses as YAML 1.1, as kubectl reads it (0440 is octal), with no
//      duplicate keys; every document has an apiVersion and kind that the schemas know.
//   2. Schema: each object through its model's validate(): types (a string where an integer
//      belongs), required fields, enums (protocol, dnsPolicy, externalTrafficPolicy), formats.
//   3. Unknown fields: the schemas allow properties they do not list, as the API server's
//      non-strict decoding does, so a misspelled optional field (imagePullPolice) would pass
//      them. Each object is also type-checked with TypeScript as an object literal of the
//      model's interface, which rejects any property the interface does not declare.
//
// Then a few checks of what the manifests promise tern (README.md there): the health port in no
// Service, the readiness probe on metrics.listen's /healthz, terminationGracePeriodSeconds above
// limits.shutdown_grace, Services selecting pods that exist, one namespace.
//
// Every run also feeds the validator a set of deliberately broken manifests and fails unless
// each is rejected with the expected complaint, so a validator that stopped checking cannot pass.
//
// Exit 0: all valid; 1: a problem (each printed as file: object: path: message); 77: the npm
// packages are not installed (make test-deps, or npm ci in tests/deploy), which ctest reports as
// skipped.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const manifestDir = path.join(repo, "deploy", "kubernetes");

for (const pkg of ["kubernetes-models", "typescript", "yaml"]) {
  if (!existsSync(path.join(here, "node_modules", pkg, "package.json"))) {
    console.log(`SKIP: ${path.join(here, "node_modules", pkg)} is missing; run 'make test-deps' ` +
      "(or 'npm ci' in tests/deploy)");
    process.exit(77);
  }
}
const YAML = await import("yaml");
const ts = (await import("typescript")).default;

// ---------------------------------------------------------------------------------------------
// Pass 1: YAML documents.

// Returns [{ source, index, line, object }] and pushes parse problems onto `problems`.
function parseManifests(source, text, problems) {
  const lineOf = (offset) => text.slice(0, offset).split("\n").length;
  const documents = YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true });
  const out = [];
  documents.forEach((doc, index) => {
    const line = lineOf(doc.range?.[0] ?? 0);
    for (const e of [...doc.errors, ...doc.warnings]) {
      problems.push(`${source}:${e.linePos?.[0]?.line ?? line}: YAML: ${e.message.split("\n")[0]}`);
    }
    if (doc.errors.length) return;
    const object = doc.toJS({ maxAliasCount: -1 });
    if (object === null || object === undefined) return; // an empty document (a trailing ---)
    out.push({ source, index, line, object });
  });
  if (!Array.isArray(documents) || documents.length === 0) problems.push(`${source}: no YAML documents`);
  return out;
}

function describe(m) {
  const o = m.object;
  const ns = o?.metadata?.namespace ? `${o.metadata.namespace}/` : "";
  return `${m.source}:${m.line}: ${o?.kind ?? "?"} ${ns}${o?.metadata?.name ?? "?"}`;
}

// kubernetes-models/<apiVersion>/<Kind>: "v1" is the core group, "apps/v1" a named one.
async function modelOf(object) {
  const { apiVersion, kind } = object ?? {};
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind) ||
      !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) {
    return { error: "apiVersion and kind must be strings naming a Kubernetes type" };
  }
  const specifier = `kubernetes-models/${apiVersion}/${kind}`;
  try {
    const module = await import(specifier);
    if (typeof module[kind] !== "function") throw new Error("no class");
    return { specifier, Model: module[kind], iface: `I${kind}` };
  } catch {
    return { error: `unknown apiVersion/kind ${apiVersion} ${kind} (not in kubernetes-models)` };
  }
}

// ---------------------------------------------------------------------------------------------
// Pass 2: the OpenAPI schema, through the model's compiled validator.

function schemaProblems(m, Model) {
  try {
    new Model(m.object).validate();
    return [];
  } catch (e) {
    const errors = Array.isArray(e?.errors) ? e.errors : [{ instancePath: "", message: String(e?.message ?? e) }];
    return errors.map((err) => {
      const where = (err.instancePath || "").split("/").slice(1)
        .map((seg) => seg.replaceAll("~1", "/").replaceAll("~0", "~"))
        .reduce((acc, seg) => (/^[0-9]+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "") ||
        "(object)";
      const allowed = err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : "";
      return `${describe(m)}: ${where}: ${err.message}${allowed}`;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Pass 3: unknown fields, by type-checking each object as a TypeScript object literal.

// Writes `value` as a TypeScript expression, one property or element a line, and records for
// each line the path of what starts on it, so that a diagnostic's line names the field.
function emit(value, pathOf, lines, indent, currentPath, prefix, suffix) {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) { lines.push(pad + prefix + "[]" + suffix); pathOf.push(currentPath); return; }
    lines.push(pad + prefix + "["); pathOf.push(currentPath);
    value.forEach((v, i) => emit(v, pathOf, lines, indent + 1, `${currentPath}[${i}]`, "", ","));
    lines.push(pad + "]" + suffix); pathOf.push(currentPath);
  } else if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 0) { lines.push(pad + prefix + "{}" + suffix); pathOf.push(currentPath); return; }
    lines.push(pad + prefix + "{"); pathOf.push(currentPath);
    for (const k of keys) {
      const p = currentPath ? `${currentPath}.${k}` : k;
      emit(value[k], pathOf, lines, indent + 1, p, `${JSON.stringify(k)}: `, ",");
    }
    lines.push(pad + "}" + suffix); pathOf.push(currentPath);
  } else {
    lines.push(pad + prefix + JSON.stringify(value) + suffix); pathOf.push(currentPath);
  }
}

// items: [{ m, specifier, iface }]; returns problems.
function unknownFieldProblems(items) {
  if (items.length === 0) return [];
  const lines = [];
  const owner = []; // per line: { item, path }
  const pathOf = [];
  items.forEach((item, i) => {
    lines.push(`import type { ${item.iface} as T${i} } from ${JSON.stringify(item.specifier)};`);
    owner.push(null);
  });
  items.forEach((item, i) => {
    const start = lines.length;
    pathOf.length = 0;
    emit(item.m.object, pathOf, lines, 0, "", `export const m${i}: T${i} = `, ";");
    pathOf.forEach((p, k) => { owner[start + k] = { item, path: p || "(object)" }; });
  });
  const fileName = path.join(here, "__manifests__.ts");
  const text = lines.join("\n") + "\n";
  const options = {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler, lib: ["lib.es2022.d.ts"],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) =>
    name === fileName ? ts.createSourceFile(name, text, lang) : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  host.readFile = (name) => (name === fileName ? text : readFile.call(host, name));
  const program = ts.createProgram([fileName], options, host);
  const problems = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n").split("\n");
    // The first line names the mismatch; the last, when there is a chain, the innermost cause.
    const text = message.length > 1 ? `${message[0].trim()} ... ${message.at(-1).trim()}` : message[0];
    if (!d.file || d.file.fileName !== fileName) {
      problems.push(`TypeScript: ${text}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start ?? 0).line;
    const o = owner[line];
    problems.push(o ? `${describe(o.item.m)}: ${o.path}: ${text}` : `TypeScript: ${text}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// tern's own promises (deploy/kubernetes/README.md).

const podSpecOf = (o) =>
  ["DaemonSet", "Deployment", "StatefulSet"].includes(o?.kind) ? o.spec?.template?.spec : undefined;

function ternProblems(manifests) {
  const problems = [];
  const config = manifests.find((m) => m.object.kind === "ConfigMap" && m.object.metadata?.name === "tern-config");
  let ternConfig = null;
  if (config) {
    try {
      ternConfig = YAML.parse(config.object.data?.["tern.yaml.template"] ?? "", { uniqueKeys: true });
    } catch (e) {
      problems.push(`${describe(config)}: data.tern.yaml.template: not YAML: ${e.message.split("\n")[0]}`);
    }
  }
  const metricsPort = Number(String(ternConfig?.metrics?.listen ?? "").split(":").at(-1)) || null;
  const grace = ternConfig?.limits?.shutdown_grace ?? 30;
  const namespaces = new Set(manifests.map((m) => m.object.metadata?.namespace).filter(Boolean));
  if (namespaces.size > 1) problems.push(`manifests use several namespaces: ${[...namespaces].join(", ")}`);

  const podLabels = [];
  for (const m of manifests) {
    const spec = podSpecOf(m.object);
    if (!spec) continue;
    podLabels.push(m.object.spec.template.metadata?.labels ?? {});
    const ternd = (spec.containers ?? []).find((c) => c.name === "ternd");
    if (!ternd) continue;
    if (!config) problems.push(`${describe(m)}: runs ternd but no ConfigMap tern-config is among the manifests`);
    const probe = ternd.readinessProbe?.httpGet;
    if (probe?.path !== "/healthz" || (metricsPort !== null && probe?.port !== metricsPort)) {
      problems.push(`${describe(m)}: ternd's readinessProbe must GET /healthz on metrics.listen's port ${metricsPort}`);
    }
    if (!ternd.lifecycle?.preStop) problems.push(`${describe(m)}: ternd has no preStop drain`);
    const tgps = spec.terminationGracePeriodSeconds ?? 30;
    if (!(tgps >= grace + 10)) {
      problems.push(`${describe(m)}: terminationGracePeriodSeconds ${tgps} leaves no margin over limits.shutdown_grace ${grace} (need ${grace + 10} or more)`);
    }
    for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
      if ((c.ports ?? []).some((p) => p.containerPort === metricsPort || p.hostPort === metricsPort)) {
        problems.push(`${describe(m)}: container ${c.name} declares the health/metrics port ${metricsPort}`);
      }
    }
  }
  for (const m of manifests) {
    if (m.object.kind !== "Service") continue;
    for (const p of m.object.spec?.ports ?? []) {
      if (metricsPort !== null && (p.port === metricsPort || p.targetPort === metricsPort)) {
        problems.push(`${describe(m)}: exposes the health/metrics port ${metricsPort}`);
      }
    }
    const selector = m.object.spec?.selector ?? {};
    const matches = podLabels.some((labels) => Object.entries(selector).every(([k, v]) => labels[k] === v));
    if (Object.keys(selector).length === 0 || !matches) {
      problems.push(`${describe(m)}: its selector matches no pod template among the manifests`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

async function validate(files) {
  const problems = [];
  const manifests = [];
  for (const { source, text } of files) manifests.push(...parseManifests(source, text, problems));
  const typed = [];
  for (const m of manifests) {
    const model = await modelOf(m.object);
    if (model.error) { problems.push(`${describe(m)}: ${model.error}`); continue; }
    problems.push(...schemaProblems(m, model.Model));
    typed.push({ m, specifier: model.specifier, iface: model.iface });
  }
  problems.push(...unknownFieldProblems(typed));
  return { manifests, problems };
}

// Broken manifests, each with a fragment of the complaint it must draw.
const pod = (spec, extra = "") => `apiVersion: v1
kind: Pod
metadata:
  name: broken
  namespace: tern
${extra}spec:
${spec}`;
const brokenCases = [
  ["a misspelled required field", pod(`  contianers:
    - name: c
      image: i
`), "contianers"],
  ["a misspelled optional field", pod(`  containers:
    - name: c
      image: i
      imagePullPolice: Always
`), "imagePullPolice"],
  ["a string where an integer belongs", pod(`  terminationGracePeriodSeconds: "75"
  containers:
    - name: c
      image: i
`), "terminationGracePeriodSeconds: must be integer"],
  ["a value outside an enum", pod(`  containers:
    - name: c
      image: i
      ports:
        - containerPort: 3478
          protocol: UPD
`), "protocol: must be equal to one of the allowed values"],
  ["a duplicate key", pod(`  containers:
    - name: c
      image: i
      image: j
`), "Map keys must be unique"],
  ["an unknown kind", `apiVersion: apps/v1
kind: DaemonSett
metadata:
  name: broken
`, "unknown apiVersion/kind apps/v1 DaemonSett"],
  ["a Service exposing the health port", `apiVersion: v1
kind: Service
metadata:
  name: broken
  namespace: tern
spec:
  selector:
    app.kubernetes.io/name: nothing-runs-this
  ports:
    - port: 9641
      protocol: TCP
`, "its selector matches no pod template"],
];

async function selfTest() {
  const failures = [];
  for (const [what, text, expected] of brokenCases) {
    const source = `<broken: ${what}>`;
    const { problems } = await validate([{ source, text }]);
    const all = [...problems, ...ternProblems(parseManifests(source, text, []))];
    if (!all.some((p) => p.includes(expected))) {
      failures.push(`validator accepted ${what} (expected a complaint containing "${expected}"; got ${JSON.stringify(all)})`);
    }
  }
  return failures;
}

const args = process.argv.slice(2);
const paths = args.length
  ? args.map((a) => path.resolve(a))
  : readdirSync(manifestDir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(manifestDir, f));
if (paths.length === 0) {
  console.error(`no manifests in ${manifestDir}`);
  process.exit(1);
}
const files = paths.map((p) => ({ source: path.relative(process.cwd(), p) || p, text: readFileSync(p, "utf8") }));
const { manifests, problems } = await validate(files);
problems.push(...ternProblems(manifests));
const selfTestFailures = await selfTest();

for (const f of files) {
  const objects = manifests.filter((m) => m.source === f.source).map((m) => `${m.object.kind} ${m.object.metadata?.name}`);
  const bad = problems.some((p) => p.startsWith(`${f.source}:`));
  console.log(`${bad ? "FAIL" : "ok  "} ${f.source}: ${objects.join(", ") || "no objects"}`);
}
for (const p of problems) console.log(`  ${p}`);
for (const f of selfTestFailures) console.log(`SELF-TEST FAILED: ${f}`);
console.log(`self-test: ${brokenCases.length - selfTestFailures.length} of ${brokenCases.length} broken manifests rejected`);
const failedFiles = files.filter((f) => problems.some((p) => p.startsWith(`${f.source}:`))).length +
  (problems.some((p) => !files.some((f) => p.startsWith(`${f.source}:`))) ? 1 : 0);
console.log(`${files.length - Math.min(failedFiles, files.length)} passed, ${failedFiles + selfTestFailures.length} failed`);
process.exit(problems.length || selfTestFailures.length ? 1 : 0);
