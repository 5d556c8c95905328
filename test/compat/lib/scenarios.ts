/**
 * The compatibility suite's scenario ids, in table order: one source for the harness (expected
 * cells, table rows) and the Node client programs. Every client program reports a JSON line per id
 * (see test/compat/README.md).
 */
export const EDGE_SCENARIOS = [
  "connect",
  "pubsub",
  "queue",
  "request_reply",
  "no_responders",
  "headers",
  "echo_false",
  "drain",
  "flush_rtt",
  "max_payload",
  "reconnect",
  "js_publish_ack",
  "js_msg_id_dedupe",
  "js_stream_info",
  "js_stream_names_list",
  "js_pull_fetch",
  "js_consume",
  "js_ordered",
  "js_push_deliver",
  "js_ack_nak_term_wpi",
  "js_consumer_info_list",
  "js_msg_get_by_subject",
  "kv_put_get",
  "kv_watch",
  "kv_history",
  "kv_keys",
  "obj_put_get",
  "obj_list",
  "service_call",
  "service_discovery",
] as const;

export const PLATFORM_SCENARIOS = [
  "platform_connect",
  "platform_sub_wildcard",
  "platform_publish_into_tenant",
  "platform_request_into_tenant",
  "platform_js_consume_ack",
  "platform_kv_write",
] as const;

export const SCENARIOS = [...EDGE_SCENARIOS, ...PLATFORM_SCENARIOS] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

/** Variant `chain` (the edge certificate file holds leaf + tenant CA) runs only these. */
export const CHAIN_SCENARIOS: readonly ScenarioId[] = ["connect", "pubsub", "request_reply", "platform_connect"];

export type Variant = "leaf" | "chain";
export type CellResult = "pass" | "fail" | "n/a";

export interface ScenarioReport {
  scenario: string;
  result: CellResult;
  detail: string;
}
