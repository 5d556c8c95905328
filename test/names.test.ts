import test from "ava";
import { assertTenantSlug, parseCommonName } from "../pki/names.ts";

const valid: Array<[string, ReturnType<typeof parseCommonName>]> = [
  ["agent-001.partition-1.acme-corp.serviceradar", { kind: "edge", component: "agent-001", partition: "partition-1", tenant: "acme-corp" }],
  ["poller_2.p_1.globex.serviceradar", { kind: "edge", component: "poller_2", partition: "p_1", tenant: "globex" }],
  ["a.b.c.serviceradar", { kind: "edge", component: "a", partition: "b", tenant: "c" }],
  [`${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.serviceradar`, { kind: "edge", component: "a".repeat(63), partition: "b".repeat(63), tenant: "c".repeat(63) }],
  ["admin.platform.serviceradar", { kind: "platform", name: "admin" }],
  ["event-writer.platform.serviceradar", { kind: "platform", name: "event-writer" }],
];

for (const [cn, expected] of valid) {
  test(`CN ${cn.slice(0, 60)} parses`, (t) => {
    t.deepEqual(parseCommonName(cn), expected);
  });
}

const invalid: Array<[string, string, string]> = [
  ["three tokens", "agent-001.acme-corp.serviceradar", "invalid_cn_format"],
  ["five tokens", "x.agent-001.partition-1.acme-corp.serviceradar", "invalid_cn_format"],
  ["wrong suffix", "agent-001.partition-1.acme-corp.example", "invalid_cn_format"],
  ["empty token", "agent-001..acme-corp.serviceradar", "invalid_cn_format"],
  ["upper case", "Agent-001.partition-1.acme-corp.serviceradar", "invalid_cn_format"],
  ["upper-case slug", "agent-001.partition-1.Acme.serviceradar", "invalid_cn_format"],
  ["bad characters", "agent*001.partition-1.acme-corp.serviceradar", "invalid_cn_format"],
  ["underscore in slug", "agent-001.partition-1.acme_corp.serviceradar", "invalid_cn_format"],
  ["leading hyphen", "-agent.partition-1.acme-corp.serviceradar", "invalid_cn_format"],
  ["trailing hyphen in slug", "agent.partition-1.acme-.serviceradar", "invalid_cn_format"],
  ["overlong token", `${"a".repeat(64)}.partition-1.acme-corp.serviceradar`, "invalid_cn_format"],
  ["overlong slug", `agent.partition-1.${"a".repeat(64)}.serviceradar`, "invalid_cn_format"],
  ["space", "agent 001.partition-1.acme-corp.serviceradar", "invalid_cn_format"],
  ["empty", "", "invalid_cn_format"],
  ["suffix only", "serviceradar", "invalid_cn_format"],
  ["platform with bad name", "Admin.platform.serviceradar", "invalid_cn_format"],
  ["reserved slug platform", "agent-001.partition-1.platform.serviceradar", "reserved_slug"],
  ["reserved slug sys", "agent-001.partition-1.sys.serviceradar", "reserved_slug"],
  ["reserved slug system", "agent-001.partition-1.system.serviceradar", "reserved_slug"],
  ["reserved slug admin", "agent-001.partition-1.admin.serviceradar", "reserved_slug"],
  ["reserved slug serviceradar", "agent-001.partition-1.serviceradar.serviceradar", "reserved_slug"],
  ["reserved slug ca", "agent-001.partition-1.ca.serviceradar", "reserved_slug"],
];

for (const [name, cn, code] of invalid) {
  test(`CN refused (${name}) with ${code}`, (t) => {
    const err = t.throws(() => parseCommonName(cn));
    t.is((err as unknown as { code: string }).code, code);
    t.true(err!.message.length > 20, "the refusal carries a sentence");
  });
}

test("tenant slugs: reserved names and bad syntax are refused with their codes", (t) => {
  t.is(assertTenantSlug("acme-corp"), "acme-corp");
  t.is((t.throws(() => assertTenantSlug("admin")) as unknown as { code: string }).code, "reserved_slug");
  t.is((t.throws(() => assertTenantSlug("acme.corp")) as unknown as { code: string }).code, "invalid_slug");
  t.is((t.throws(() => assertTenantSlug("")) as unknown as { code: string }).code, "invalid_slug");
});
