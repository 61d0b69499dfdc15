//! Figures over many runs, printed at the end of a CI run or a long run.

use std::collections::BTreeMap;
use std::fmt;

use crate::check::ViolationKind;
use crate::world::{Counts, Report};

/// Totals over a set of seeds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds counted last-vote-wins (the rest first-vote-wins).
    pub last_vote_wins: u64,
    /// Seeds whose edges sealed in their host (the rest in the component).
    pub host_sealing: u64,
    /// What the runs did, added up.
    pub counts: Counts,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Seeds with violations, with their kinds.
    pub failed: Vec<(u64, Vec<ViolationKind>)>,
    /// Violations by kind.
    pub violations: BTreeMap<ViolationKind, u64>,
}

impl Summary {
    /// Adds one run.
    pub fn add(&mut self, report: &Report) {
        self.seeds += 1;
        self.last_vote_wins += u64::from(report.last_vote_wins);
        self.host_sealing += u64::from(report.host_sealing);
        self.counts.add(&report.counts);
        for (kind, n) in &report.faults {
            *self.faults.entry(kind).or_insert(0) += n;
        }
        if !report.violations.is_empty() {
            let mut kinds: Vec<ViolationKind> = report.violations.iter().map(|v| v.kind).collect();
            kinds.dedup();
            for v in &report.violations {
                *self.violations.entry(v.kind).or_insert(0) += 1;
            }
            self.failed.push((report.seed, kinds));
        }
    }

    /// Faults injected over all runs.
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation figures")?;
        writeln!(
            f,
            "  seeds run              {:>10}  ({} last-vote-wins, {} first-vote-wins)",
            self.seeds,
            self.last_vote_wins,
            self.seeds - self.last_vote_wins
        )?;
        writeln!(
            f,
            "  seeds sealed in host   {:>10}  ({} in the component)",
            self.host_sealing,
            self.seeds - self.host_sealing
        )?;
        writeln!(f, "  steps                  {:>10}", self.counts.steps)?;
        writeln!(f, "  ballots planned        {:>10}", self.counts.ballots)?;
        writeln!(
            f,
            "  submissions to edges   {:>10}",
            self.counts.submissions
        )?;
        writeln!(f, "  receipts issued        {:>10}", self.counts.receipts)?;
        writeln!(
            f,
            "  votes checked          {:>10}  (receipts x regions)",
            self.counts.votes_checked
        )?;
        writeln!(
            f,
            "  queue messages sent    {:>10}  ({} closed by the vote bound, {} by a byte bound)",
            self.counts.messages_sent, self.counts.cut_by_votes, self.counts.cut_by_bytes
        )?;
        writeln!(
            f,
            "  deliveries             {:>10}  ({} redeliveries)",
            self.counts.deliveries, self.counts.redeliveries
        )?;
        writeln!(
            f,
            "  forged messages        {:>10}  ({} dead-lettered in all)",
            self.counts.forged, self.counts.dead_lettered
        )?;
        writeln!(f, "  faults injected        {:>10}", self.faults_total())?;
        for (kind, n) in &self.faults {
            writeln!(f, "    {kind:<46} {n:>8}")?;
        }
        writeln!(f, "  seeds with violations  {:>10}", self.failed.len())?;
        for (kind, n) in &self.violations {
            writeln!(f, "    {kind:?}: {n}")?;
        }
        Ok(())
    }
}
