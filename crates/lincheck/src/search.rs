//! The search: Wing & Gong's backtracking over minimal operations, with Lowe's memoisation of
//! (operations applied, model state).

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Debug};
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The model's state; memoised, so it must hash and compare.
    type State: Clone + Eq + Hash + Debug;
    /// An operation's input.
    type Input: Debug;
    /// An operation's output.
    type Output: Debug;

    /// The state before the first operation.
    fn init(&self) -> Self::State;

    /// The state after applying `input` in `state`, if `output` is what the sequential object
    /// returns for it there; `None` if `output` is impossible in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The thread that ran it.
    pub client: usize,
    /// Invocation timestamp.
    pub call: u64,
    /// Response timestamp (above `call`).
    pub ret: u64,
    /// What was asked.
    pub input: I,
    /// What was answered.
    pub output: O,
}

/// What a successful check explored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Parts checked (1 for an unsplit history).
    pub partitions: usize,
    /// Operations checked.
    pub operations: usize,
    /// Search steps (attempts to apply an operation, and backtracks).
    pub steps: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        self.partitions += other.partitions;
        self.operations += other.operations;
        self.steps += other.steps;
    }
}

/// Why a history is not linearizable (or could not be decided within the step budget).
#[derive(Clone, Debug)]
pub struct Failure {
    /// The part that failed, as `Debug` text (empty for an unsplit history).
    pub partition: String,
    /// Operations in that part.
    pub operations: usize,
    /// The most operations the search managed to linearize in that part.
    pub linearized: usize,
    /// The model state after that longest linearized prefix, as `Debug` text.
    pub state: String,
    /// Up to 8 operations not in that prefix, earliest invocation first, as `Debug` text: the
    /// culprit is usually among the first.
    pub pending: Vec<String>,
    /// The search gave up after its step budget (not a proof of a violation).
    pub budget_exhausted: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.budget_exhausted {
            write!(f, "undecided (step budget exhausted)")?;
        } else {
            write!(f, "not linearizable")?;
        }
        if !self.partition.is_empty() {
            write!(f, " in part {}", self.partition)?;
        }
        writeln!(
            f,
            ": {} of {} operations linearized at best, leaving the model in {}; next pending:",
            self.linearized, self.operations, self.state
        )?;
        for p in &self.pending {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// The search gives up (with `budget_exhausted`) after this many steps per operation: far
/// more than any history of a few threads needs, so that a pathological case fails loudly
/// instead of hanging.
const STEPS_PER_OPERATION: u64 = 100_000;

/// Checks that `history` is linearizable with respect to `model`.
///
/// Timestamps must be distinct (as [`Clock`](crate::Clock) makes them) and each `call`
/// below its `ret`.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Result<Stats, Failure> {
    let ops: Vec<_> = history.iter().collect();
    search(model, &ops).map_err(|mut f| {
        f.partition.clear();
        f
    })
}

/// Checks each part of `history` separately (P-compositionality): `part` gives the part of an
/// operation (its key), and each part must be linearizable with respect to `model` on its own.
/// Parts are checked in key order; the first that fails is reported.
pub fn check_partitioned<M, P>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: impl Fn(&Operation<M::Input, M::Output>) -> P,
) -> Result<Stats, Failure>
where
    M: Model,
    P: Ord + Debug,
{
    type Part<'h, M> = Vec<&'h Operation<<M as Model>::Input, <M as Model>::Output>>;
    let mut parts: BTreeMap<P, Part<'_, M>> = BTreeMap::new();
    for op in history {
        parts.entry(part(op)).or_default().push(op);
    }
    check_parts(model, parts)
}

/// Checks parts given as lists of operations (see [`check_partitioned`]), in order; the first
/// that fails is reported.
pub fn check_parts<'h, M, P>(
    model: &M,
    parts: impl IntoIterator<Item = (P, Vec<&'h Operation<M::Input, M::Output>>)>,
) -> Result<Stats, Failure>
where
    M: Model,
    M::Input: 'h,
    M::Output: 'h,
    P: Debug,
{
    let mut stats = Stats::default();
    for (p, ops) in parts {
        match search(model, &ops) {
            Ok(s) => stats += s,
            Err(mut f) => {
                f.partition = format!("{p:?}");
                return Err(f);
            }
        }
    }
    Ok(stats)
}

/// No link.
const NONE: usize = usize::MAX;

/// A fixed-size set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The event list: node `j < 2n` is the `j`-th event in time order, node `2n` the head.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each event.
    op: Vec<usize>,
    /// For an invocation, the node of its response; `NONE` for a response.
    response: Vec<usize>,
    head: usize,
}

impl Events {
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
        let n = ops.len();
        let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(2 * n);
        for (i, o) in ops.iter().enumerate() {
            assert!(
                o.call < o.ret,
                "operation {i}: invocation not before response"
            );
            events.push((o.call, i, true));
            events.push((o.ret, i, false));
        }
        events.sort_unstable_by_key(|e| e.0);
        assert!(
            events.windows(2).all(|w| w[0].0 != w[1].0),
            "timestamps must be distinct"
        );
        let head = 2 * n;
        let mut next = vec![NONE; 2 * n + 1];
        let mut prev = vec![NONE; 2 * n + 1];
        let mut op = vec![NONE; 2 * n];
        let mut response = vec![NONE; 2 * n];
        let mut call_node = vec![NONE; n];
        let mut last = head;
        for (j, &(_, i, is_call)) in events.iter().enumerate() {
            op[j] = i;
            if is_call {
                call_node[i] = j;
            } else {
                response[call_node[i]] = j;
            }
            next[last] = j;
            prev[j] = last;
            last = j;
        }
        Events {
            next,
            prev,
            op,
            response,
            head,
        }
    }

    fn unlink(&mut self, j: usize) {
        let (p, n) = (self.prev[j], self.next[j]);
        self.next[p] = n;
        if n != NONE {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, j: usize) {
        let (p, n) = (self.prev[j], self.next[j]);
        self.next[p] = j;
        if n != NONE {
            self.prev[n] = j;
        }
    }

    /// Removes an invocation and its response (dancing links: `unlift` restores them).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.response[call]);
    }

    /// Undoes the last `lift`, which must have been of `call`.
    fn unlift(&mut self, call: usize) {
        self.relink(self.response[call]);
        self.relink(call);
    }
}

fn search<M: Model>(model: &M, ops: &[&Operation<M::Input, M::Output>]) -> Result<Stats, Failure> {
    let n = ops.len();
    let mut events = Events::new(ops);
    let mut applied = Bits::new(n);
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    // The invocations lifted so far, with the state before each.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut best = (0, applied.clone(), state.clone());
    let budget = STEPS_PER_OPERATION.saturating_mul(n as u64).max(1_000_000);
    let mut steps = 0u64;
    let mut entry = events.next[events.head];
    let failure = |best: (usize, Bits, M::State), exhausted: bool| {
        let mut pending: Vec<usize> = (0..n).filter(|&i| !best.1.get(i)).collect();
        pending.sort_by_key(|&i| ops[i].call);
        Failure {
            partition: String::new(),
            operations: n,
            linearized: best.0,
            state: format!("{:?}", best.2),
            pending: pending
                .iter()
                .take(8)
                .map(|&i| format!("{:?}", ops[i]))
                .collect(),
            budget_exhausted: exhausted,
        }
    };
    while events.next[events.head] != NONE {
        steps += 1;
        if steps > budget {
            return Err(failure(best, true));
        }
        let i = events.op[entry];
        if events.response[entry] != NONE {
            // An invocation: try to make it take effect now.
            if let Some(after) = model.step(&state, &ops[i].input, &ops[i].output) {
                applied.set(i);
                if seen.insert((applied.clone(), after.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, after)));
                    events.lift(entry);
                    if stack.len() > best.0 {
                        best = (stack.len(), applied.clone(), state.clone());
                    }
                    entry = events.next[events.head];
                    continue;
                }
                applied.clear(i);
            }
            entry = events.next[entry];
        } else {
            // A response of an operation not applied: it had to take effect by now. Undo the
            // last choice and try the next candidate after it.
            let Some((call, before)) = stack.pop() else {
                return Err(failure(best, false));
            };
            state = before;
            applied.clear(events.op[call]);
            events.unlift(call);
            entry = events.next[call];
        }
    }
    Ok(Stats {
        partitions: 1,
        operations: n,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: `Some(v)` writes v, `None` reads (the output is the value read).
    struct Register;

    impl Model for Register {
        type State = u64;
        type Input = Option<u64>;
        type Output = u64;
        fn init(&self) -> u64 {
            0
        }
        fn step(&self, s: &u64, input: &Option<u64>, output: &u64) -> Option<u64> {
            match input {
                Some(v) => Some(*v),
                None => (output == s).then_some(*s),
            }
        }
    }

    fn op(
        client: usize,
        call: u64,
        ret: u64,
        input: Option<u64>,
        output: u64,
    ) -> Operation<Option<u64>, u64> {
        Operation {
            client,
            call,
            ret,
            input,
            output,
        }
    }

    #[test]
    fn sequential_history_is_accepted() {
        let h = [
            op(0, 0, 1, Some(1), 0),
            op(0, 2, 3, None, 1),
            op(0, 4, 5, Some(2), 0),
            op(0, 6, 7, None, 2),
        ];
        assert_eq!(check(&Register, &h).unwrap().operations, 4);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_rejected() {
        // write 1 returns at 1; a read invoked at 2 returns 0.
        let h = [op(0, 0, 1, Some(1), 0), op(1, 2, 3, None, 0)];
        let f = check(&Register, &h).unwrap_err();
        assert!(!f.budget_exhausted);
        assert_eq!(f.linearized, 1);
        assert!(f.pending[0].contains("call: 2"), "{f}");
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        // A read overlapping a write may see the old or the new value.
        for seen in [0, 1] {
            let h = [op(0, 0, 3, Some(1), 0), op(1, 1, 2, None, seen)];
            check(&Register, &h).unwrap();
        }
        let h = [op(0, 0, 3, Some(1), 0), op(1, 1, 2, None, 7)];
        assert!(check(&Register, &h).is_err());
    }

    #[test]
    fn backtracking_finds_the_one_order() {
        // Two overlapping writes, then reads that fix their order: w2 must come first,
        // although w1 is invoked first (the search tries w1 first, then backtracks).
        let h = [
            op(0, 0, 4, Some(1), 0),
            op(1, 1, 5, Some(2), 0),
            op(2, 2, 3, None, 2),
            op(2, 6, 7, None, 1),
        ];
        let stats = check(&Register, &h).unwrap();
        assert!(stats.steps > 4, "{stats:?}");
    }

    #[test]
    fn reads_cannot_see_values_go_back() {
        // Two sequential reads during one write: new then old is impossible.
        let h = [
            op(0, 0, 10, Some(1), 0),
            op(1, 1, 2, None, 1),
            op(1, 3, 4, None, 0),
        ];
        assert!(check(&Register, &h).is_err());
        let h = [
            op(0, 0, 10, Some(1), 0),
            op(1, 1, 2, None, 0),
            op(1, 3, 4, None, 1),
        ];
        check(&Register, &h).unwrap();
    }

    #[test]
    fn partitions_are_checked_separately_and_named() {
        // Register per key: input (key, op).
        struct Keyed;
        impl Model for Keyed {
            type State = u64;
            type Input = (u8, Option<u64>);
            type Output = u64;
            fn init(&self) -> u64 {
                0
            }
            fn step(&self, s: &u64, input: &(u8, Option<u64>), output: &u64) -> Option<u64> {
                Register.step(s, &input.1, output)
            }
        }
        let o = |c, call, ret, k: u8, i, out| Operation {
            client: c,
            call,
            ret,
            input: (k, i),
            output: out,
        };
        // Unsplit, key b's read of 1 would be explained by key a's write; split, it is not.
        let h = [o(0, 0, 1, b'a', Some(1), 0), o(1, 2, 3, b'b', None, 1)];
        assert!(check(&Keyed, &h).is_ok());
        let f = check_partitioned(&Keyed, &h, |op| op.input.0).unwrap_err();
        assert_eq!(f.partition, format!("{:?}", b'b'));
        let ok = [
            o(0, 0, 1, b'a', Some(1), 0),
            o(1, 2, 3, b'a', None, 1),
            o(1, 4, 5, b'b', None, 0),
        ];
        let stats = check_partitioned(&Keyed, &ok, |op| op.input.0).unwrap();
        assert_eq!((stats.partitions, stats.operations), (2, 3));
    }

    #[test]
    fn many_concurrent_writers_and_readers_stay_tractable() {
        // 4 clients, 2,000 overlapping operations: each window of 4 overlaps fully.
        let mut h = Vec::new();
        let mut value = 0;
        for round in 0..500u64 {
            let t = round * 10;
            value += 1;
            h.push(op(0, t, t + 8, Some(value), 0));
            h.push(op(1, t + 1, t + 7, None, value));
            h.push(op(2, t + 2, t + 6, None, value - 1));
            h.push(op(3, t + 3, t + 9, None, value));
        }
        let stats = check(&Register, &h).unwrap();
        assert_eq!(stats.operations, 2000);
    }
}
