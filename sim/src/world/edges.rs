//! The edges of a run: voters' submissions, the group commit (the host's own core) and the
//! receipts.

use super::*;

/// A vote waiting in an edge for its group commit, as the host's group commit holds it: under
/// local sealing the component's own one-vote envelope (with the plan and the vote, for its
/// receipt), under host sealing the handed vote (with the plan).
pub(super) type Waiting = Item<(usize, Box<Accepted>), usize>;
/// A sealed group commit: the message's lines, and each vote in it with its plan.
type Committed = (Vec<String>, Vec<(usize, Accepted)>);

impl World {
    pub(super) fn edge_time(&self, region: usize) -> u64 {
        self.clock
            .now_ms()
            .saturating_add_signed(self.edges[region].skew_ms)
    }

    pub(super) fn submit(&mut self, plan: usize, region: usize) {
        self.submissions += 1;
        let now = self.edge_time(region);
        let path = format!("/v1/elections/{ELECTION}/votes");
        let request = Request {
            method: "POST",
            path: &path,
            content_type: Some("application/json"),
            body: &self.plans[plan].body,
        };
        let node = &self.edges[region];
        let outcome = node
            .keyless
            .as_ref()
            .unwrap_or(&node.edge)
            .handle(request, now);
        let waiting = match outcome {
            Outcome::Enqueue(accepted) => node
                .edge
                .seal_single(&accepted, now)
                .map(|(_, line)| Item::Envelope {
                    line,
                    reply: (plan, accepted),
                })
                .map_err(|e| edgevote_edge_core::Response::error(500, e.code(), e)),
            Outcome::HandToHost(handed) => node
                .edge
                .check_handed(&handed.election, &handed.body, now)
                .map(|vote| Item::Vote {
                    vote: Box::new(vote),
                    reply: plan,
                }),
            Outcome::Respond(response) => Err(response),
            // The simulated edges hold their key or hand to their host; none has a platform.
            Outcome::VerifyOnPlatform(_) => Err(edgevote_edge_core::Response::error(
                500,
                "edge_misconfigured",
                "a simulated edge has no platform crypto",
            )),
        };
        match waiting {
            Ok(waiting) => {
                self.edges[region].buffer.push_back(waiting);
                self.plans[plan].state = PlanState::AtEdge;
                self.trace(format_args!("submit plan={plan} region={region}"));
            }
            Err(response) => self.refused(plan, region, &response),
        }
    }

    pub(super) fn refused(
        &mut self,
        plan: usize,
        region: usize,
        response: &edgevote_edge_core::Response,
    ) {
        self.plans[plan].state = PlanState::Refused;
        let code = response.error_code().unwrap_or_default();
        self.violation(
            ViolationKind::LegitRefused,
            format!(
                "ballot {plan} refused by r{region}: {} {code}",
                response.status
            ),
        );
    }

    /// Under host sealing (even seeds) the component holds no key and its host verifies, seals
    /// and signs; under local sealing the edge does it all.
    pub(super) fn host_sealing(&self) -> bool {
        self.seed.is_multiple_of(2)
    }

    /// The voter got no answer (edge crash, 503): it tries again a little later.
    pub(super) fn retry_later(&mut self, plan: usize) {
        let delay = self.rng.between(50, 1500);
        let p = &mut self.plans[plan];
        p.state = PlanState::Waiting;
        p.ready_at_ms = self.clock.now_ms() + delay;
    }

    /// The edge's group commit, through the host's own core: one message for the votes
    /// waiting, within the run's bounds, receipts after the queue said yes.
    pub(super) async fn flush(&mut self, region: usize) {
        let Some(batch) = self.gather(region) else {
            return;
        };
        let take = batch.len();
        let now = self.edge_time(region);
        let sealed = batch.seal(&self.edges[region].edge, now);
        let Some((lines, batch)) = self.sealed_votes(region, sealed) else {
            return;
        };
        if std::mem::take(&mut self.edges[region].crash_before_enqueue) {
            self.trace(format_args!(
                "edge r{region} crashed before enqueue ({take} votes)"
            ));
            batch.iter().for_each(|(plan, _)| self.retry_later(*plan));
            return;
        }
        let body = match message::encode(&lines) {
            Ok(body) => body,
            Err(e) => {
                let detail = format!("edge r{region} packed a message out of bounds: {e}");
                self.violation(ViolationKind::LegitRefused, detail);
                batch
                    .iter()
                    .for_each(|(plan, _)| self.plans[*plan].state = PlanState::Refused);
                return;
            }
        };
        if let Err(e) = self.queues[region].send_batch(vec![body]).await {
            self.trace(format_args!("edge r{region} 503: {e}"));
            batch.iter().for_each(|(plan, _)| self.retry_later(*plan));
            return;
        }
        for (plan, accepted) in &batch {
            let key = (self.plans[*plan].sub.clone(), accepted.admitted.vote_id);
            let copy = (
                accepted.vote.received_at_ms,
                accepted.vote.ballot.choice.clone(),
            );
            let earliest = self.enqueued.entry(key).or_insert(copy.clone());
            if copy.0 < earliest.0 {
                *earliest = copy;
            }
        }
        if std::mem::take(&mut self.edges[region].crash_after_enqueue) {
            self.trace(format_args!(
                "edge r{region} crashed after enqueue, before replying ({take} votes)"
            ));
            batch.iter().for_each(|(plan, _)| self.retry_later(*plan));
            return;
        }
        let committed = batch.len();
        for (plan, accepted) in batch {
            self.give_receipt(region, plan, &accepted);
        }
        self.trace(format_args!("edge r{region} committed {committed} votes"));
    }

    /// The waiting votes of one message, as the host's `fill` takes them: until the vote
    /// bound, or until one does not fit (it stays first in line for the next message).
    pub(super) fn gather(&mut self, region: usize) -> Option<Batch<(usize, Box<Accepted>), usize>> {
        let mut batch = Batch::new(self.bounds);
        let buffer = &mut self.edges[region].buffer;
        while !batch.is_full() {
            let Some(waiting) = buffer.pop_front() else {
                break;
            };
            if let Err(carried) = batch.offer(waiting) {
                buffer.push_front(carried);
                self.cut_by_bytes += 1;
                break;
            }
        }
        if batch.is_full() && !buffer.is_empty() {
            self.cut_by_votes += 1;
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// The message's lines and its votes, each with its plan; a legitimate vote refused in
    /// sealing is a violation.
    pub(super) fn sealed_votes(
        &mut self,
        region: usize,
        sealed: Sealed<(usize, Box<Accepted>), usize, ()>,
    ) -> Option<Committed> {
        for ((plan, _), detail) in sealed.refused_envelopes {
            self.plans[plan].state = PlanState::Refused;
            let detail = format!("ballot {plan}'s envelope refused by r{region}: {detail}");
            self.violation(ViolationKind::LegitRefused, detail);
        }
        for (plan, refused) in sealed.refused_votes {
            let response = match refused {
                VoteRefused::Token(response) => *response,
                VoteRefused::KeyExpired(detail) | VoteRefused::Sealing(detail) => {
                    edgevote_edge_core::Response::error(503, "sealing_failed", detail)
                }
            };
            self.refused(plan, region, &response);
        }
        let envelopes = sealed.envelopes.into_iter().map(|(plan, a)| (plan, *a));
        let votes =
            (sealed.votes.into_iter()).map(|v: SealedVote<usize, ()>| (v.reply, v.accepted));
        let batch: Vec<(usize, Accepted)> = envelopes.chain(votes).collect();
        (!batch.is_empty()).then_some((sealed.lines, batch))
    }

    pub(super) fn give_receipt(&mut self, region: usize, plan: usize, accepted: &Accepted) {
        let response = self.edges[region].edge.receipt_response(accepted);
        let receipt = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.get("receipt")?.as_str().map(str::to_owned));
        let Some(receipt) = receipt.filter(|_| response.status == 202) else {
            self.violation(
                ViolationKind::InvalidReceipt,
                format!(
                    "edge r{region} answered {} without a receipt",
                    response.status
                ),
            );
            self.plans[plan].state = PlanState::Refused;
            return;
        };
        self.receipts.push((self.plans[plan].sub.clone(), receipt));
        if std::mem::take(&mut self.plans[plan].resubmit) {
            self.retry_later(plan);
        } else {
            self.plans[plan].state = PlanState::Done;
        }
    }
}
