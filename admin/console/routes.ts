/**
 * The console, `/ui/…`: server-rendered pages over HTTPS for an allowed platform identity (the
 * browser presents its client certificate). Changes are form POSTs with a CSRF token bound to
 * the identity, answered with a redirect to the page that shows the result (or, for a new
 * package, the one page that ever shows its download link). They call the same operations as
 * the API, audited the same way.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CodedError, errorMessage } from "../../common/coded-error.ts";
import type { Logger } from "../../common/logger.ts";
import { actorOf, downloadUrl, refuseCrossSite } from "../api/routes.ts";
import { platformIdentityOf } from "../auth.ts";
import { errorBody, httpError, httpStatusOf } from "../errors.ts";
import type { AdminOperations, OperationsSlot } from "../operations.ts";
import type { Markup } from "./html.ts";
import { auditPage, deleteTenantPage, errorPage, packageCreatedPage, rotateCaPage, sessionsPage, tenantPage, tenantsPage, when, type PageContext } from "./pages.ts";

type Form = Record<string, string | undefined>;

/** The form's token: an HMAC of the identity's certificate under a key of this process. */
class CsrfTokens {
  private readonly key = randomBytes(32);
  tokenFor(fingerprint: string): string {
    return createHmac("sha256", this.key).update(fingerprint).digest("base64url");
  }
  check(fingerprint: string, token: string | undefined): void {
    const expected = Buffer.from(this.tokenFor(fingerprint));
    const given = Buffer.from(token ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw httpError(403, "csrf_failed", "the form is stale or did not come from this console; reload the page and try again");
  }
}

function send(reply: FastifyReply, page: Markup, status = 200): FastifyReply {
  return reply.code(status).type("text/html; charset=utf-8").header("cache-control", "no-store").header("x-frame-options", "DENY").header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'").send(page.text);
}

function back(reply: FastifyReply, to: string, flash: { ok?: string; error?: string }): FastifyReply {
  const q = new URLSearchParams(flash as Record<string, string>).toString();
  return reply.code(303).redirect(`${to}${q ? `?${q}` : ""}`);
}

export async function consoleRoutes(app: FastifyInstance, opts: { operations: OperationsSlot; log: Logger }): Promise<void> {
  const csrf = new CsrfTokens();
  const ops = (): AdminOperations => opts.operations();

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.addHook("onRequest", async (req) => {
    const o = ops();
    req.platform = platformIdentityOf(req.raw, o.runtime.registry, o.runtime.allowedIdentities);
  });
  app.addHook("preHandler", async (req) => {
    if (req.method !== "POST") return;
    refuseCrossSite(req);
    csrf.check(req.platform!.fingerprint, (req.body as Form | undefined)?._csrf);
  });

  app.setErrorHandler((err, req, reply) => {
    const status = (err as { validation?: unknown }).validation ? 400 : httpStatusOf(err);
    const { error } = errorBody(err);
    if (status >= 500 && status !== 503) opts.log.error({ event: "console_error", url: req.url.split("?")[0], code: error.code, error: error.message }, "console request failed");
    return send(reply, errorPage(req.platform ? context(req) : {}, status, error.code, error.message), status);
  });
  app.setNotFoundHandler((req, reply) => send(reply, errorPage({}, 404, "not_found", `no page ${req.url.split("?")[0]}`), 404));

  const context = (req: FastifyRequest): PageContext => {
    const q = req.query as { ok?: string; error?: string };
    const flash = q.error ? { kind: "error" as const, text: q.error.slice(0, 500) } : q.ok ? { kind: "ok" as const, text: q.ok.slice(0, 500) } : undefined;
    return { identity: req.platform!.cn, csrf: csrf.tokenFor(req.platform!.fingerprint), ...(flash ? { flash } : {}) };
  };

  /** Runs a change from a form; on a refusal goes back to `to` with the reason (server faults become the error page). */
  const change = async (reply: FastifyReply, to: string, run: () => Promise<{ to?: string; ok: string }>): Promise<FastifyReply> => {
    try {
      const done = await run();
      return back(reply, done.to ?? to, { ok: done.ok });
    } catch (err) {
      if (httpStatusOf(err) >= 500) throw err;
      return back(reply, to, { error: `${errorMessage(err)} [${err instanceof CodedError ? err.code : "error"}]` });
    }
  };
  const slugParams = { type: "object", required: ["slug"], properties: { slug: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" } } } as const;

  app.get("/", async (req, reply) => {
    const [tenants, plans] = await Promise.all([ops().listTenants(), ops().plans()]);
    return send(reply, tenantsPage(context(req), tenants, plans.map((p) => p.name)));
  });

  app.post<{ Body: Form }>("/tenants", async (req, reply) =>
    change(reply, "/ui/", async () => {
      const slug = (req.body.slug ?? "").trim();
      const done = await ops().createTenant(actorOf(req), { slug, ...(req.body.name?.trim() ? { name: req.body.name.trim() } : {}), ...(req.body.plan ? { plan: req.body.plan } : {}) });
      return { to: `/ui/tenants/${done.tenant.slug}`, ok: `tenant ${done.tenant.slug} ${done.status}: CA, NATS account and streams are in place` };
    }),
  );

  app.get<{ Params: { slug: string } }>("/tenants/:slug", { schema: { params: slugParams } }, async (req, reply) => send(reply, tenantPage(context(req), await ops().tenantPage(req.params.slug))));

  app.post<{ Params: { slug: string } }>("/tenants/:slug/suspend", { schema: { params: slugParams } }, async (req, reply) =>
    change(reply, `/ui/tenants/${req.params.slug}`, async () => {
      await ops().suspendTenant(actorOf(req), req.params.slug);
      return { ok: "suspended: its users are revoked in NATS and its sessions cut" };
    }),
  );
  app.post<{ Params: { slug: string } }>("/tenants/:slug/resume", { schema: { params: slugParams } }, async (req, reply) =>
    change(reply, `/ui/tenants/${req.params.slug}`, async () => {
      await ops().resumeTenant(actorOf(req), req.params.slug);
      return { ok: "resumed" };
    }),
  );
  app.post<{ Params: { slug: string }; Body: Form }>("/tenants/:slug/plan", { schema: { params: slugParams } }, async (req, reply) =>
    change(reply, `/ui/tenants/${req.params.slug}`, async () => {
      const view = await ops().setPlan(actorOf(req), req.params.slug, req.body.plan ?? "");
      return { ok: `plan ${view.plan}: limits and streams resized` };
    }),
  );

  app.get<{ Params: { slug: string } }>("/tenants/:slug/delete", { schema: { params: slugParams } }, async (req, reply) => send(reply, deleteTenantPage(context(req), await ops().showTenant(req.params.slug))));
  app.post<{ Params: { slug: string }; Body: Form }>("/tenants/:slug/delete", { schema: { params: slugParams } }, async (req, reply) =>
    change(reply, `/ui/tenants/${req.params.slug}`, async () => {
      if (req.body.confirm !== req.params.slug) throw new CodedError("confirmation_required", `type the slug "${req.params.slug}" to confirm the deletion`);
      await ops().deleteTenant(actorOf(req), req.params.slug);
      return { to: "/ui/", ok: `tenant ${req.params.slug} deleted` };
    }),
  );

  app.get<{ Params: { slug: string } }>("/tenants/:slug/ca/rotate", { schema: { params: slugParams } }, async (req, reply) => send(reply, rotateCaPage(context(req), await ops().showTenant(req.params.slug))));
  app.post<{ Params: { slug: string }; Body: Form }>("/tenants/:slug/ca/rotate", { schema: { params: slugParams } }, async (req, reply) =>
    change(reply, `/ui/tenants/${req.params.slug}`, async () => {
      if (req.body.confirm !== "yes") throw new CodedError("confirmation_required", "tick the confirmation to rotate the CA");
      const done = await ops().rotateCa(actorOf(req), req.params.slug, { overlap: (req.body.overlap ?? "30d").trim() });
      return { ok: `CA rotated: the new CA (serial ${done.active.serial_number}) issues from now on${done.overlap_until ? `; the previous one's certificates connect until ${when(done.overlap_until)}` : "; the previous one's certificates are refused from now on"}` };
    }),
  );

  app.post<{ Params: { slug: string; serial: string } }>("/tenants/:slug/certificates/:serial/revoke", async (req, reply) =>
    change(reply, `/ui/tenants/${req.params.slug}`, async () => {
      const done = await ops().revokeCertificate(actorOf(req), req.params.slug, req.params.serial);
      return { ok: `certificate ${done.certificate.serial_number} (${done.certificate.subject_cn}) ${done.status === "revoked" ? "revoked: its sessions are cut" : "was already revoked"}` };
    }),
  );

  // A new package's page is the only place its download link is ever shown: answered, not redirected.
  app.post<{ Params: { slug: string }; Body: Form }>("/tenants/:slug/packages", { schema: { params: slugParams } }, async (req, reply) => {
    const slug = req.params.slug;
    try {
      const created = await ops().packages.create(actorOf(req), {
        tenant: slug,
        component: (req.body.component ?? "").trim(),
        partition: (req.body.partition ?? "").trim(),
        type: req.body.type ?? "",
        ...(req.body.ttl?.trim() ? { ttl: req.body.ttl.trim() } : {}),
      });
      const p = created.package;
      return send(reply, packageCreatedPage(context(req), slug, { id: p.id, component: p.component, partition: p.partition, expires_at: p.expires_at, url: downloadUrl(req, p.download_path, created.token) }));
    } catch (err) {
      if (httpStatusOf(err) >= 500) throw err;
      return back(reply, `/ui/tenants/${slug}`, { error: `${errorMessage(err)} [${err instanceof CodedError ? err.code : "error"}]` });
    }
  });

  app.post<{ Params: { id: string } }>("/packages/:id/revoke", async (req, reply) => {
    let to = "/ui/";
    return change(reply, to, async () => {
      const p = await ops().packages.revoke(actorOf(req), req.params.id);
      to = `/ui/tenants/${p.tenant}`;
      return { to, ok: `package ${p.id} revoked, and its certificate` };
    });
  });

  app.get<{ Querystring: { tenant?: string } }>("/sessions", async (req, reply) => {
    const tenant = req.query.tenant || undefined;
    return send(reply, sessionsPage(context(req), await ops().sessions(tenant ? { tenant } : {}), tenant));
  });
  app.post<{ Params: { id: string } }>("/sessions/:id/disconnect", async (req, reply) => {
    let to = "/ui/sessions";
    return change(reply, to, async () => {
      const s = await ops().disconnect(actorOf(req), req.params.id);
      if (s.tenant) to = `/ui/tenants/${s.tenant}`;
      return { to, ok: `session ${s.id} (${s.cn}) disconnected` };
    });
  });

  app.get("/audit", async (req, reply) => send(reply, auditPage(context(req), (await ops().auditRecords({ since: new Date(Date.now() - 86_400_000), limit: 10_000 })).slice(-300))));
}
