// Metrics of the desired-state reconciler, on the registry passed in (docs/METRICS.md).
import { Counter, Gauge, type Registry } from 'prom-client'

export function createSyncMetrics (registry: Registry) {
  const r = [registry]
  return {
    desiredReleases: new Gauge({ name: 'herald_sync_desired_releases', help: 'Releases the desired-state documents list', registers: r }),
    heldReleases: new Gauge({ name: 'herald_sync_held_releases', help: 'Listed releases held (complete, pinned, matching their pin)', registers: r }),
    entries: new Gauge({ name: 'herald_sync_entries', help: 'Desired-state entries by state', labelNames: ['state'] as const, registers: r }),
    lastReconcileSeconds: new Gauge({ name: 'herald_sync_last_reconcile_timestamp_seconds', help: 'When the last reconcile pass ended (unix time)', registers: r }),
    reconcilesTotal: new Counter({ name: 'herald_sync_reconciles_total', help: 'Reconcile passes by result (ok, error: a document is invalid or a step failed)', labelNames: ['result'] as const, registers: r }),
    errorsTotal: new Counter({ name: 'herald_sync_errors_total', help: 'Reconcile errors by code', labelNames: ['code'] as const, registers: r }),
    actionsTotal: new Counter({ name: 'herald_sync_actions_total', help: 'Changes made by the reconciler (fetch, switch, pin, unpin, gc)', labelNames: ['action'] as const, registers: r })
  }
}

export type SyncMetrics = ReturnType<typeof createSyncMetrics>
