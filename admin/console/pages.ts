/**
 * The console's pages: plain server-rendered HTML, a little CSS, no script. Every change is a
 * form POST carrying the page's CSRF token; destructive ones go through a confirmation page.
 * Pure functions of the data they are given.
 */
import type { TenantView } from "../../accounts/tenants.ts";
import type { AuditRecord } from "../../gateway/audit.ts";
import type { SessionSummary } from "../../gateway/telemetry.ts";
import { formatBytes } from "../../streams/units.ts";
import type { StreamStats } from "../jetstream-stats.ts";
import type { TenantSummary } from "../operations.ts";
import { html, Markup } from "./html.ts";

export interface PageContext {
  /** The platform identity's CN, shown in the header. */
  identity: string;
  csrf: string;
  flash?: { kind: "ok" | "error"; text: string };
}

export interface CertificateRow {
  serial_number: string;
  subject_cn: string;
  not_before: string;
  not_after: string;
  issued_at?: string;
  source?: string;
  state: "valid" | "revoked" | "expired";
}

export interface PackageRow {
  id: string;
  component: string;
  partition: string;
  profile: string;
  state: string;
  created_at: string;
  expires_at: string;
  delivered_at?: string;
}

export interface TenantPageData {
  tenant: TenantView;
  plans: string[];
  sessions: SessionSummary[];
  streams: StreamStats[] | { error: string };
  /** Issued certificates and onboarding packages (absent where this gateway cannot list them). */
  certificates?: CertificateRow[];
  packages?: PackageRow[];
  packageTypes?: readonly string[];
}

const STYLE = `
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;background:#f4f6f9}
header{background:#1f2a44;color:#fff;padding:10px 24px;display:flex;align-items:center;gap:24px}
header h1{font-size:16px;margin:0;font-weight:600}header nav a{color:#c9d4ee;margin-right:16px;text-decoration:none}header nav a:hover{color:#fff}
header .who{margin-left:auto;color:#9fb0d4;font-size:12px}
main{max-width:1200px;margin:0 auto;padding:20px 24px}
h2{font-size:20px;margin:8px 0 12px}h3{font-size:15px;margin:0 0 10px}
section{background:#fff;border:1px solid #dde3ec;border-radius:6px;padding:14px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #edf0f5;vertical-align:top}
th{font-size:12px;color:#5a6680;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.active,.valid,.pending,.overlap{background:#dff5e3;color:#1b6b2c}.suspended,.revoked,.ended{background:#fde2e1;color:#9b1c1c}
.provisioning,.expired,.delivered{background:#eef0f4;color:#4a5368}
.flash{padding:10px 14px;border-radius:6px;margin-bottom:16px}.flash.ok{background:#e3f4e8;border:1px solid #a6d9b3}.flash.error{background:#fde8e7;border:1px solid #f2b1ad}
form.inline{display:inline}label{display:inline-block;margin-right:10px}input,select{font:inherit;padding:4px 6px;border:1px solid #c4ccd9;border-radius:4px}
button{font:inherit;padding:4px 12px;border-radius:4px;border:1px solid #2f5bd3;background:#2f5bd3;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#2f5bd3}button.danger{background:#c62828;border-color:#c62828}
.grid{display:grid;grid-template-columns:170px 1fr;gap:4px 12px}.grid div:nth-child(odd){color:#5a6680}
.muted{color:#6b7590}.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-end}
.link-box{background:#fffbe6;border:1px solid #f0d77a;padding:12px;border-radius:6px}
`;

function layout(ctx: PageContext, title: string, body: Markup): Markup {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · tenant-gateway</title><style>${new Markup(STYLE)}</style></head>
<body><header><h1>tenant-gateway</h1><nav><a href="/ui/">Tenants</a><a href="/ui/sessions">Sessions</a><a href="/ui/audit">Audit</a><a href="/metrics">Metrics</a><a href="/api/v1/openapi.json">API</a></nav><span class="who">${ctx.identity}</span></header>
<main>${ctx.flash ? html`<div class="flash ${ctx.flash.kind}" role="status">${ctx.flash.text}</div>` : ""}${body}</main></body></html>`;
}

function csrfField(ctx: PageContext): Markup {
  return html`<input type="hidden" name="_csrf" value="${ctx.csrf}">`;
}

function badge(state: string): Markup {
  return html`<span class="badge ${state}">${state}</span>`;
}

/** `2026-12-02T14:39:54.311Z` → `2026-12-02 14:39 UTC` */
export function when(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function postButton(ctx: PageContext, action: string, label: string, kind: "primary" | "secondary" | "danger" = "secondary", name?: string): Markup {
  return html`<form class="inline" method="post" action="${action}">${csrfField(ctx)}<button type="submit" class="${kind === "primary" ? "" : kind}"${name ? html` name="action" value="${name}"` : ""}>${label}</button></form>`;
}

export function tenantsPage(ctx: PageContext, tenants: readonly TenantSummary[], plans: readonly string[]): Markup {
  const rows = tenants.map(
    (t) => html`<tr><td><a href="/ui/tenants/${t.slug}">${t.slug}</a></td><td>${t.name}</td><td>${badge(t.status)}</td><td>${t.plan}</td><td class="num">${t.sessions}</td><td>${when(t.ca.not_after)}</td><td>${when(t.created_at)}</td></tr>`,
  );
  return layout(
    ctx,
    "Tenants",
    html`<h2>Tenants</h2>
<section><table id="tenants"><thead><tr><th>Slug</th><th>Name</th><th>Status</th><th>Plan</th><th class="num">Sessions</th><th>CA expires</th><th>Created</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7" class="muted">no tenants yet</td></tr>`}</tbody></table></section>
<section><h3>Create a tenant</h3><p class="muted">Its own CA, its NATS account (pushed to NATS live), its streams from the templates.</p>
<form method="post" action="/ui/tenants" class="row">${csrfField(ctx)}
<label>Slug <input name="slug" required pattern="[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?" placeholder="acme-corp"></label>
<label>Name <input name="name" placeholder="Acme Corp"></label>
<label>Plan <select name="plan">${plans.map((p) => html`<option value="${p}">${p}</option>`)}</select></label>
<button type="submit">Create tenant</button></form></section>`,
  );
}

function caSection(ctx: PageContext, t: TenantView): Markup {
  const previous = t.previous_cas.map(
    (p) => html`<tr><td>${badge(p.state)}</td><td class="mono">${p.serial_number}</td><td>${when(p.not_before)} – ${when(p.not_after)}</td><td>${when(p.retired_at)}</td><td>${p.state === "overlap" ? html`admitted until <strong>${when(p.admitted_until)}</strong>` : html`refused since ${when(p.admitted_until)}`}</td><td class="mono">${p.spki_sha256}</td></tr>`,
  );
  return html`<section id="ca"><h3>Certificate authority</h3>
<div class="grid"><div>Subject</div><div class="mono" id="ca-subject">${t.ca.subject_cn}</div>
<div>Serial</div><div class="mono" id="ca-serial">${t.ca.serial_number}</div>
<div>Valid</div><div>${when(t.ca.not_before)} – ${when(t.ca.not_after)}</div>
<div>SPKI SHA-256</div><div class="mono">${t.ca.spki_sha256}</div></div>
${previous.length ? html`<h3 style="margin-top:14px">Previous CAs</h3><table id="previous-cas"><thead><tr><th>State</th><th>Serial</th><th>Valid</th><th>Retired</th><th>Overlap</th><th>SPKI SHA-256</th></tr></thead><tbody>${previous}</tbody></table>` : html`<p class="muted">No previous CA: this CA has never been rotated.</p>`}
${t.status === "active" ? html`<p><a href="/ui/tenants/${t.slug}/ca/rotate"><button type="button" class="secondary" id="rotate-ca">Regenerate / rotate CA…</button></a></p>` : ""}
</section>`;
}

function streamsSection(streams: TenantPageData["streams"]): Markup {
  if (!Array.isArray(streams)) return html`<section id="streams"><h3>Streams</h3><p class="muted">${streams.error}</p></section>`;
  const rows = streams.map(
    (s) =>
      html`<tr><td><strong>${s.stream}</strong></td><td class="mono">${(s.subjects ?? []).join(", ")}</td><td class="num">${s.messages}</td><td class="num">${formatBytes(s.bytes)}</td><td class="num">${s.consumers}</td><td class="num">${s.consumer_lag}</td><td class="num">${s.ack_pending}</td></tr>${(s.consumer_detail ?? []).map(
        (c) => html`<tr class="consumer"><td class="muted">↳ ${c.name}${c.durable ? "" : " (ephemeral)"}</td><td></td><td></td><td></td><td></td><td class="num">${c.num_pending}</td><td class="num">${c.num_ack_pending}</td></tr>`,
      )}`,
  );
  return html`<section id="streams"><h3>Streams</h3><table><thead><tr><th>Stream</th><th>Subjects (edge view)</th><th class="num">Messages</th><th class="num">Bytes</th><th class="num">Consumers</th><th class="num">Consumer lag</th><th class="num">Ack pending</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7" class="muted">no streams</td></tr>`}</tbody></table></section>`;
}

function sessionRows(ctx: PageContext, sessions: readonly SessionSummary[], withTenant: boolean): Markup {
  const rows = sessions.map(
    (s) =>
      html`<tr><td class="mono">${s.id}</td>${withTenant ? html`<td>${s.tenant ? html`<a href="/ui/tenants/${s.tenant}">${s.tenant}</a>` : html`<em>platform</em>`}</td>` : ""}<td class="mono">${s.cn}</td><td class="mono">${s.remote}</td><td>${when(s.started_at)}</td><td class="num">${s.counters.msgsIn}</td><td class="num">${s.counters.msgsOut}</td><td>${postButton(ctx, `/ui/sessions/${s.id}/disconnect`, "Disconnect", "danger")}</td></tr>`,
  );
  return html`<table id="sessions"><thead><tr><th>Session</th>${withTenant ? html`<th>Tenant</th>` : ""}<th>Identity</th><th>Remote</th><th>Since</th><th class="num">Msgs in</th><th class="num">Msgs out</th><th></th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="${withTenant ? 8 : 7}" class="muted">no live session</td></tr>`}</tbody></table>`;
}

function certificatesSection(ctx: PageContext, slug: string, certificates: readonly CertificateRow[]): Markup {
  const rows = certificates.map(
    (c) =>
      html`<tr><td>${badge(c.state)}</td><td class="mono">${c.subject_cn}</td><td class="mono">${c.serial_number}</td><td>${when(c.issued_at ?? c.not_before)}</td><td>${when(c.not_after)}</td><td class="muted">${c.source ?? ""}</td><td>${c.state === "valid" ? postButton(ctx, `/ui/tenants/${slug}/certificates/${c.serial_number}/revoke`, "Revoke", "danger") : ""}</td></tr>`,
  );
  return html`<section id="certificates"><h3>Certificates</h3><table><thead><tr><th>State</th><th>Identity</th><th>Serial</th><th>Issued</th><th>Expires</th><th>Issued by</th><th></th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7" class="muted">no certificates issued</td></tr>`}</tbody></table></section>`;
}

function packagesSection(ctx: PageContext, slug: string, packages: readonly PackageRow[], types: readonly string[]): Markup {
  const rows = packages.map(
    (p) =>
      html`<tr><td>${badge(p.state)}</td><td class="mono">${p.id}</td><td>${p.component} / ${p.partition}</td><td>${p.profile}</td><td>${when(p.created_at)}</td><td>${p.state === "delivered" ? html`delivered ${when(p.delivered_at)}` : html`token expires ${when(p.expires_at)}`}</td><td>${p.state === "revoked" ? "" : postButton(ctx, `/ui/packages/${p.id}/revoke`, "Revoke", "danger")}</td></tr>`,
  );
  return html`<section id="packages"><h3>Onboarding packages</h3><table><thead><tr><th>State</th><th>Package</th><th>Component / partition</th><th>Type</th><th>Created</th><th>Download</th><th></th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="7" class="muted">no packages</td></tr>`}</tbody></table>
<h3 style="margin-top:14px">Create a package</h3><p class="muted">A certificate for the component from this tenant's CA, and a bundle (certificates, config, install script, Kubernetes manifests) downloadable once.</p>
<form method="post" action="/ui/tenants/${slug}/packages" class="row">${csrfField(ctx)}
<label>Component <input name="component" required placeholder="agent-002"></label>
<label>Partition <input name="partition" required placeholder="partition-1"></label>
<label>Type <select name="type">${types.map((t) => html`<option value="${t}">${t}</option>`)}</select></label>
<label>Token valid for <input name="ttl" value="24h" size="6"></label>
<button type="submit" id="create-package">Create package</button></form></section>`;
}

export function tenantPage(ctx: PageContext, data: TenantPageData): Markup {
  const t = data.tenant;
  return layout(
    ctx,
    t.slug,
    html`<h2>${t.name} <span class="muted">(${t.slug})</span> ${badge(t.status)}</h2>
<section id="overview"><div class="grid"><div>Plan</div><div id="plan">${t.plan}</div><div>Tenant id</div><div class="mono">${t.id}</div><div>NATS account</div><div class="mono">${t.account.public_key}</div>
<div>Created</div><div>${when(t.created_at)}</div>${t.suspended_at ? html`<div>Suspended</div><div>${when(t.suspended_at)}</div>` : ""}
<div>Limits</div><div>connections ${limit(t.limits.connections)}, subscriptions ${limit(t.limits.subscriptions)}, payload ${t.limits.max_payload < 0 ? "server's" : formatBytes(t.limits.max_payload)}, JetStream disk ${formatBytes(t.limits.jetstream.disk)}, memory ${formatBytes(t.limits.jetstream.memory)}</div></div>
<div class="row" style="margin-top:12px">${t.status === "active" ? postButton(ctx, `/ui/tenants/${t.slug}/suspend`, "Suspend", "danger") : t.status === "suspended" ? postButton(ctx, `/ui/tenants/${t.slug}/resume`, "Resume", "primary") : ""}
<form class="inline" method="post" action="/ui/tenants/${t.slug}/plan">${csrfField(ctx)}<label>Plan <select name="plan">${data.plans.map((p) => html`<option value="${p}"${p === t.plan ? html` selected` : ""}>${p}</option>`)}</select></label><button type="submit" class="secondary">Change plan</button></form>
<a href="/ui/tenants/${t.slug}/delete"><button type="button" class="secondary">Delete…</button></a></div></section>
${caSection(ctx, t)}
<section id="live-sessions"><h3>Live sessions</h3>${sessionRows(ctx, data.sessions, false)}</section>
${streamsSection(data.streams)}
${data.certificates ? certificatesSection(ctx, t.slug, data.certificates) : ""}
${data.packages ? packagesSection(ctx, t.slug, data.packages, data.packageTypes ?? []) : ""}`,
  );
}

function limit(n: number): string {
  return n < 0 ? "unlimited" : String(n);
}

export function rotateCaPage(ctx: PageContext, t: TenantView): Markup {
  return layout(
    ctx,
    `Rotate the CA of ${t.slug}`,
    html`<h2>Rotate the CA of ${t.name} <span class="muted">(${t.slug})</span></h2>
<section><p>A new CA for this tenant issues every certificate from now on. Certificates of the current CA (serial <code>${t.ca.serial_number}</code>) are still admitted until the overlap ends, then refused (<code>retired_ca</code>): re-issue the tenant's components before then (new onboarding packages, or <code>tenant-gateway pki renew</code>).</p>
<form method="post" action="/ui/tenants/${t.slug}/ca/rotate">${csrfField(ctx)}
<p><label>Overlap <input name="overlap" value="30d" size="6"></label> <span class="muted">how long the current CA's certificates still connect, e.g. 30d, 12h, or 0 to cut them now</span></p>
<p><label><input type="checkbox" name="confirm" value="yes" required id="confirm-rotate"> I understand: certificates of the current CA stop connecting when the overlap ends.</label></p>
<button type="submit" class="danger" id="confirm-rotate-button">Rotate the CA</button> <a href="/ui/tenants/${t.slug}">Cancel</a></form></section>`,
  );
}

export function deleteTenantPage(ctx: PageContext, t: TenantView): Markup {
  return layout(
    ctx,
    `Delete ${t.slug}`,
    html`<h2>Delete ${t.name} <span class="muted">(${t.slug})</span></h2>
<section><p>Every user of the tenant is revoked (live sessions are cut), its streams and their messages are deleted, its NATS account is removed and the tenant is forgotten. This cannot be undone.</p>
<form method="post" action="/ui/tenants/${t.slug}/delete">${csrfField(ctx)}<p><label>Type the slug to confirm <input name="confirm" required autocomplete="off"></label></p>
<button type="submit" class="danger">Delete the tenant</button> <a href="/ui/tenants/${t.slug}">Cancel</a></form></section>`,
  );
}

export function packageCreatedPage(ctx: PageContext, slug: string, created: { id: string; component: string; partition: string; expires_at: string; url: string }): Markup {
  return layout(
    ctx,
    "Package created",
    html`<h2>Onboarding package for ${created.component} / ${created.partition} <span class="muted">(${slug})</span></h2>
<section><p>The download link works <strong>once</strong>, until ${when(created.expires_at)}. It is shown only now: copy it and hand it to the site (its token is not kept, only its hash).</p>
<div class="link-box"><a id="download-link" href="${created.url}" class="mono">${created.url}</a></div>
<p class="muted">From the site: <code>curl -fO --cacert root.pem '${created.url}'</code> (package ${created.id})</p>
<p><a href="/ui/tenants/${slug}">Back to ${slug}</a></p></section>`,
  );
}

export function sessionsPage(ctx: PageContext, sessions: readonly SessionSummary[], tenant: string | undefined): Markup {
  return layout(ctx, "Sessions", html`<h2>Live sessions${tenant ? html` of ${tenant}` : ""}</h2><section>${sessionRows(ctx, sessions, true)}</section>`);
}

export function auditPage(ctx: PageContext, records: readonly AuditRecord[]): Markup {
  const rows = [...records].reverse().map(
    (r) => html`<tr><td>${when(r.time)}</td><td>${r.identity}</td><td>${r.tenant}</td><td>${r.operation}${r.api ? html` <span class="muted">${r.api}</span>` : ""}</td><td class="mono">${r.subject}</td><td class="num">${r.count}</td></tr>`,
  );
  return layout(
    ctx,
    "Audit",
    html`<h2>Audit trail <span class="muted">(newest first, last 24 h)</span></h2><section><table id="audit"><thead><tr><th>Time</th><th>Identity</th><th>Tenant</th><th>Operation</th><th>Subject / request</th><th class="num">Count</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="6" class="muted">no records</td></tr>`}</tbody></table></section>`,
  );
}

export function errorPage(ctx: Partial<PageContext>, status: number, code: string, message: string): Markup {
  const body = html`<h2>${status === 404 ? "Not found" : status < 500 ? "Refused" : "Failed"}</h2><section><p><code>${code}</code></p><p>${message}</p><p><a href="/ui/">Back to the tenants</a></p></section>`;
  return layout({ identity: ctx.identity ?? "", csrf: ctx.csrf ?? "" }, "Error", body);
}
