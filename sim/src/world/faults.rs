//! Faults: which start, which are in effect, and healing.

use super::*;

impl World {
    pub(super) fn is_active(&self, fault: Fault) -> bool {
        self.active.iter().any(|(f, _)| *f == fault)
    }

    pub(super) fn count_fault(&mut self, kind: &'static str) {
        *self.faults_injected.entry(kind).or_insert(0) += 1;
    }

    /// Starts a random fault. Lasting faults hold for a number of steps; one-shot faults fire
    /// at the next matching action.
    pub(super) fn start_fault(&mut self) {
        let r = self.rng.index(self.config.regions);
        let other = (r + 1 + self.rng.index(self.config.regions - 1)) % self.config.regions;
        let link = (r.min(other), r.max(other));
        let until = self.step + self.rng.between(10, 120);
        let (kind, lasting) = match self.rng.below(13) {
            0 => (
                "network partition between regions",
                Some(Fault::LinkPartition(link.0, link.1)),
            ),
            1 => (
                "replication delay",
                Some(Fault::ReplicationDelay(link.0, link.1)),
            ),
            2 => ("partition collector-store", Some(Fault::StorePartition(r))),
            3 => ("partition edge-queue", Some(Fault::QueueDown(r))),
            4 => ("duplicate delivery", Some(Fault::DuplicateDelivery(r))),
            5 => ("lost delete (redelivery)", Some(Fault::LostDeletes(r))),
            6 => ("collector down", Some(Fault::CollectorDown(r))),
            7 => {
                let store = &self.stores[r];
                let mut f = store.current_faults();
                f.throttled_calls += self.rng.between(1, 5) as u32;
                store.set_faults(f);
                ("store throttling", None)
            }
            8 => {
                let store = &self.stores[r];
                let mut f = store.current_faults();
                f.lost_replies += 1;
                store.set_faults(f);
                ("store write with lost reply", None)
            }
            9 => {
                self.collectors[r]
                    .faults
                    .crash_after_store
                    .store(1, Ordering::SeqCst);
                ("collector crash between store write and delete", None)
            }
            10 => {
                self.pending_crash_before_store[r] = true;
                ("collector crash before store write", None)
            }
            11 => {
                if self.rng.chance(500) {
                    self.edges[r].crash_after_enqueue = true;
                    ("edge crash after enqueue, before reply", None)
                } else {
                    self.edges[r].crash_before_enqueue = true;
                    ("edge crash before enqueue", None)
                }
            }
            _ => {
                let jump = self.rng.between(0, 6000) as i64 - 3000;
                self.edges[r].skew_ms = (self.edges[r].skew_ms + jump).clamp(-5000, 5000);
                ("clock skew jump", None)
            }
        };
        self.count_fault(kind);
        self.trace(format_args!("fault: {kind} at r{r}/link {link:?}"));
        if let Some(fault) = lasting {
            self.active.push((fault, until));
            self.apply_lasting_faults();
        }
    }

    pub(super) fn expire_faults(&mut self) {
        let before = self.active.len();
        let step = self.step;
        self.active.retain(|(_, until)| *until > step);
        if self.active.len() != before {
            self.apply_lasting_faults();
        }
    }

    /// Pushes the lasting faults' combined state into the queues and stores.
    pub(super) fn apply_lasting_faults(&mut self) {
        for r in 0..self.config.regions {
            self.queues[r].set_faults(QueueFaults {
                send_down: self.is_active(Fault::QueueDown(r)),
                duplicate_per_mille: if self.is_active(Fault::DuplicateDelivery(r)) {
                    300
                } else {
                    0
                },
                delete_lost_per_mille: if self.is_active(Fault::LostDeletes(r)) {
                    400
                } else {
                    0
                },
            });
            let store = &self.stores[r];
            store.set_faults(StoreFaults {
                unreachable: self.is_active(Fault::StorePartition(r)),
                ..store.current_faults()
            });
        }
    }

    pub(super) fn heal_all(&mut self) {
        self.active.clear();
        self.apply_lasting_faults();
        for r in 0..self.config.regions {
            self.stores[r].set_faults(StoreFaults::default());
            self.collectors[r]
                .faults
                .crash_after_store
                .store(0, Ordering::SeqCst);
            self.pending_crash_before_store[r] = false;
            self.edges[r].crash_after_enqueue = false;
            self.edges[r].crash_before_enqueue = false;
        }
        self.trace(format_args!("all faults healed"));
    }
}
