// Metrics of release events, webhooks and the post-switch hook, on the registry passed in (docs/METRICS.md).
import { Counter, Histogram, type Registry } from 'prom-client'

export function createEventsMetrics (registry: Registry) {
  const r = [registry]
  return {
    eventsTotal: new Counter({ name: 'herald_events_total', help: 'Release events by type', labelNames: ['type'] as const, registers: r }),
    webhookDeliveriesTotal: new Counter({ name: 'herald_webhook_deliveries_total', help: 'Webhook delivery attempts by result (ok, retry, failed: given up, dropped: queue full)', labelNames: ['result'] as const, registers: r }),
    hookRunsTotal: new Counter({ name: 'herald_hook_runs_total', help: 'Post-switch hook runs by result (ok, failed, timeout, dropped)', labelNames: ['result'] as const, registers: r }),
    hookDurationSeconds: new Histogram({ name: 'herald_hook_duration_seconds', help: 'Post-switch hook run time', buckets: [0.1, 0.5, 1, 5, 15, 60, 300], registers: r })
  }
}

export type EventsMetrics = ReturnType<typeof createEventsMetrics>
