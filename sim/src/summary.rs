//! Figures over many runs, printed at the end of a CI run or a long run.

use std::collections::BTreeMap;
use std::fmt;

use crate::check::ViolationKind;
use crate::world::Report;

/// Totals over a set of seeds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds counted last-vote-wins (the rest first-vote-wins).
    pub last_vote_wins: u64,
    /// Steps over all runs.
    pub steps: u64,
    /// Ballots voters meant to cast.
    pub ballots: u64,
    /// Submissions to edges.
    pub submissions: u64,
    /// Receipts issued.
    pub receipts: u64,
    /// Receipts checked against region stores.
    pub votes_checked: u64,
    /// Queue messages sent by edges.
    pub messages_sent: u64,
    /// Deliveries to collectors.
    pub deliveries: u64,
    /// Redeliveries.
    pub redeliveries: u64,
    /// Forged messages written.
    pub forged: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
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
        self.steps += report.steps;
        self.ballots += report.ballots;
        self.submissions += report.submissions;
        self.receipts += report.receipts;
        self.votes_checked += report.votes_checked;
        self.messages_sent += report.messages_sent;
        self.deliveries += report.deliveries;
        self.redeliveries += report.redeliveries;
        self.forged += report.forged;
        self.dead_lettered += report.dead_lettered;
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
        writeln!(f, "  steps                  {:>10}", self.steps)?;
        writeln!(f, "  ballots planned        {:>10}", self.ballots)?;
        writeln!(f, "  submissions to edges   {:>10}", self.submissions)?;
        writeln!(f, "  receipts issued        {:>10}", self.receipts)?;
        writeln!(
            f,
            "  votes checked          {:>10}  (receipts x regions)",
            self.votes_checked
        )?;
        writeln!(f, "  queue messages sent    {:>10}", self.messages_sent)?;
        writeln!(
            f,
            "  deliveries             {:>10}  ({} redeliveries)",
            self.deliveries, self.redeliveries
        )?;
        writeln!(
            f,
            "  forged messages        {:>10}  ({} dead-lettered in all)",
            self.forged, self.dead_lettered
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
