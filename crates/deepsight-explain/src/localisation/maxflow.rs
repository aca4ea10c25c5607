//! Boykov-Kolmogorov max-flow / min-cut (Boykov & Kolmogorov, *An Experimental Comparison of
//! Min-Cut/Max-Flow Algorithms for Energy Minimization in Vision*, PAMI 2004), the solver of the
//! GraphCut papers.
//!
//! Two search trees, S from the source and T from the sink, grow over non-saturated arcs until they
//! touch (growth); the path found is saturated (augmentation); the nodes cut off from their tree
//! become orphans that look for a new parent in their tree or are freed (adoption). Terminal arcs
//! are stored per node as one signed residual (`tr_cap > 0`: from the source, `< 0`: to the sink).
//! Adoption prefers the parent closest to its terminal, with timestamps caching distances
//! (Kolmogorov's heuristic). Capacities are `f64`; the algorithm only compares them with zero and
//! takes minima, so integer capacities give exact flows.
//!
//! After [`Graph::maxflow`] the S tree is exactly the set of nodes reachable from the source in
//! the residual graph: the source side of the minimum cut with the fewest nodes.

use std::collections::VecDeque;

const NONE: u32 = u32::MAX;
const TERMINAL: u32 = u32::MAX - 1;
const ORPHAN: u32 = u32::MAX - 2;

const FREE: u8 = 0;
const SOURCE: u8 = 1;
const SINK: u8 = 2;

/// A directed graph with two terminals, for one max-flow computation.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    // Per node.
    first: Vec<u32>,
    tr_cap: Vec<f64>,
    parent: Vec<u32>,
    tree: Vec<u8>,
    ts: Vec<u32>,
    dist: Vec<u32>,
    queued: Vec<bool>,
    // Per arc; arcs `2k` and `2k + 1` are each other's reverse (sister).
    head: Vec<u32>,
    next: Vec<u32>,
    rcap: Vec<f64>,
    flow: f64,
    time: u32,
    active: VecDeque<u32>,
    orphans: VecDeque<u32>,
    solved: bool,
}

impl Graph {
    /// A graph of `nodes` nodes and room for `edges` calls of [`Graph::add_edge`].
    pub fn new(nodes: usize, edges: usize) -> Graph {
        Graph {
            first: vec![NONE; nodes],
            tr_cap: vec![0.0; nodes],
            parent: vec![NONE; nodes],
            tree: vec![FREE; nodes],
            ts: vec![0; nodes],
            dist: vec![0; nodes],
            queued: vec![false; nodes],
            head: Vec::with_capacity(2 * edges),
            next: Vec::with_capacity(2 * edges),
            rcap: Vec::with_capacity(2 * edges),
            ..Graph::default()
        }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.first.len()
    }

    /// Adds the arcs `u -> v` of capacity `cap` and `v -> u` of capacity `rev_cap` (both >= 0,
    /// `u != v`, both `< nodes`: panics on an index out of range).
    pub fn add_edge(&mut self, u: usize, v: usize, cap: f64, rev_cap: f64) {
        debug_assert!(u != v && cap >= 0.0 && rev_cap >= 0.0);
        for (from, to, c) in [(u, v, cap), (v, u, rev_cap)] {
            self.head.push(to as u32);
            self.next.push(self.first[from]);
            self.rcap.push(c);
            self.first[from] = (self.head.len() - 1) as u32;
        }
    }

    /// Adds the terminal arcs `source -> u` of capacity `source` and `u -> sink` of capacity `sink`
    /// (both >= 0). What both carry is pushed at once; only the difference stays.
    pub fn add_tweights(&mut self, u: usize, source: f64, sink: f64) {
        let (mut s, mut t) = (source, sink);
        let old = self.tr_cap[u];
        if old > 0.0 {
            s += old;
        } else {
            t -= old;
        }
        self.flow += s.min(t);
        self.tr_cap[u] = s - t;
    }

    /// Whether `u` is on the source side of the minimum cut (valid after [`Graph::maxflow`]).
    pub fn is_source_side(&self, u: usize) -> bool {
        self.tree[u] == SOURCE
    }

    /// The flow pushed so far.
    pub fn flow(&self) -> f64 {
        self.flow
    }

    fn set_active(&mut self, u: u32) {
        if !self.queued[u as usize] {
            self.queued[u as usize] = true;
            self.active.push_back(u);
        }
    }

    fn next_active(&mut self) -> Option<u32> {
        while let Some(u) = self.active.pop_front() {
            self.queued[u as usize] = false;
            if self.parent[u as usize] != NONE {
                return Some(u);
            }
        }
        None
    }

    /// Computes the maximum flow (and so the minimum cut); returns its value. Later calls return
    /// the same value (the graph is not meant to change after it).
    pub fn maxflow(&mut self) -> f64 {
        if self.solved {
            return self.flow;
        }
        self.solved = true;
        for u in 0..self.nodes() {
            let c = self.tr_cap[u];
            if c != 0.0 {
                self.tree[u] = if c > 0.0 { SOURCE } else { SINK };
                self.parent[u] = TERMINAL;
                self.ts[u] = 0;
                self.dist[u] = 1;
                self.set_active(u as u32);
            }
        }
        let mut current: Option<u32> = None;
        loop {
            let u = match current.filter(|&u| self.parent[u as usize] != NONE) {
                Some(u) => u,
                None => match self.next_active() {
                    Some(u) => u,
                    None => break,
                },
            };
            current = None;
            let Some(mid) = self.grow(u) else { continue };
            // `u` stays the node to grow from: it may have more arcs to the other tree.
            current = Some(u);
            self.time += 1;
            self.augment(mid);
            while let Some(o) = self.orphans.pop_front() {
                self.adopt(o);
            }
        }
        self.flow
    }

    /// Grows the tree of `u` over its non-saturated arcs; returns an arc from the S tree to the T
    /// tree if the trees touch.
    fn grow(&mut self, u: u32) -> Option<u32> {
        let ui = u as usize;
        let source = self.tree[ui] == SOURCE;
        let mut a = self.first[ui];
        while a != NONE {
            let ai = a as usize;
            // Residual capacity in the direction away from the tree's terminal.
            let cap = if source { self.rcap[ai] } else { self.rcap[ai ^ 1] };
            if cap > 0.0 {
                let v = self.head[ai];
                let vi = v as usize;
                if self.parent[vi] == NONE {
                    self.tree[vi] = self.tree[ui];
                    self.parent[vi] = a ^ 1;
                    self.ts[vi] = self.ts[ui];
                    self.dist[vi] = self.dist[ui] + 1;
                    self.set_active(v);
                } else if self.tree[vi] != self.tree[ui] {
                    return Some(if source { a } else { a ^ 1 });
                } else if self.ts[vi] <= self.ts[ui] && self.dist[vi] > self.dist[ui] {
                    // `v` is closer to the terminal through `u`.
                    self.parent[vi] = a ^ 1;
                    self.ts[vi] = self.ts[ui];
                    self.dist[vi] = self.dist[ui] + 1;
                }
            }
            a = self.next[ai];
        }
        None
    }

    fn make_orphan(&mut self, u: u32, front: bool) {
        self.parent[u as usize] = ORPHAN;
        if front {
            self.orphans.push_front(u);
        } else {
            self.orphans.push_back(u);
        }
    }

    /// Pushes the bottleneck along source -> ... -> tail(mid) -> head(mid) -> ... -> sink.
    fn augment(&mut self, mid: u32) {
        let mut d = self.rcap[mid as usize];
        // Bottleneck on the S side (arcs towards the child), then the T side.
        let mut u = self.head[(mid ^ 1) as usize] as usize;
        while self.parent[u] != TERMINAL {
            let a = self.parent[u] as usize;
            d = d.min(self.rcap[a ^ 1]);
            u = self.head[a] as usize;
        }
        d = d.min(self.tr_cap[u]);
        let mut u = self.head[mid as usize] as usize;
        while self.parent[u] != TERMINAL {
            let a = self.parent[u] as usize;
            d = d.min(self.rcap[a]);
            u = self.head[a] as usize;
        }
        d = d.min(-self.tr_cap[u]);

        self.rcap[(mid ^ 1) as usize] += d;
        self.rcap[mid as usize] -= d;
        let mut u = self.head[(mid ^ 1) as usize] as usize;
        while self.parent[u] != TERMINAL {
            let a = self.parent[u] as usize;
            self.rcap[a] += d;
            self.rcap[a ^ 1] -= d;
            if self.rcap[a ^ 1] <= 0.0 {
                self.make_orphan(u as u32, true);
            }
            u = self.head[a] as usize;
        }
        self.tr_cap[u] -= d;
        if self.tr_cap[u] <= 0.0 {
            self.make_orphan(u as u32, true);
        }
        let mut u = self.head[mid as usize] as usize;
        while self.parent[u] != TERMINAL {
            let a = self.parent[u] as usize;
            self.rcap[a ^ 1] += d;
            self.rcap[a] -= d;
            if self.rcap[a] <= 0.0 {
                self.make_orphan(u as u32, true);
            }
            u = self.head[a] as usize;
        }
        self.tr_cap[u] += d;
        if self.tr_cap[u] >= 0.0 {
            self.make_orphan(u as u32, true);
        }
        self.flow += d;
    }

    /// Finds orphan `o` a new parent in its tree whose path reaches the terminal, or frees it.
    fn adopt(&mut self, o: u32) {
        let oi = o as usize;
        let source = self.tree[oi] == SOURCE;
        let mut best = NONE;
        let mut best_dist = u32::MAX;
        let mut a0 = self.first[oi];
        while a0 != NONE {
            let ai = a0 as usize;
            // Residual capacity from the candidate parent towards `o` (S) or from `o` to it (T).
            let cap = if source { self.rcap[ai ^ 1] } else { self.rcap[ai] };
            let v0 = self.head[ai] as usize;
            if cap > 0.0 && self.tree[v0] == self.tree[oi] && self.parent[v0] != NONE {
                // Distance of `v0` to its terminal, or `MAX` if its path meets an orphan.
                let mut d = 0u32;
                let mut v = v0;
                loop {
                    if self.ts[v] == self.time {
                        d += self.dist[v];
                        break;
                    }
                    let p = self.parent[v];
                    d += 1;
                    if p == TERMINAL {
                        self.ts[v] = self.time;
                        self.dist[v] = 1;
                        break;
                    }
                    if p == ORPHAN {
                        d = u32::MAX;
                        break;
                    }
                    v = self.head[p as usize] as usize;
                }
                if d != u32::MAX {
                    if d < best_dist {
                        best = a0;
                        best_dist = d;
                    }
                    // Cache the distances along the path.
                    let mut v = v0;
                    let mut dv = d;
                    while self.ts[v] != self.time {
                        self.ts[v] = self.time;
                        self.dist[v] = dv;
                        dv -= 1;
                        v = self.head[self.parent[v] as usize] as usize;
                    }
                }
            }
            a0 = self.next[ai];
        }
        if best != NONE {
            self.parent[oi] = best;
            self.ts[oi] = self.time;
            self.dist[oi] = best_dist + 1;
            return;
        }
        // No parent: `o` becomes free; its neighbours may grow into it again.
        self.tree[oi] = FREE;
        self.parent[oi] = NONE;
        let mut a0 = self.first[oi];
        while a0 != NONE {
            let ai = a0 as usize;
            let v = self.head[ai];
            let vi = v as usize;
            let p = self.parent[vi];
            if self.tree[vi] == (if source { SOURCE } else { SINK }) && p != NONE {
                let cap = if source { self.rcap[ai ^ 1] } else { self.rcap[ai] };
                if cap > 0.0 {
                    self.set_active(v);
                }
                if p != TERMINAL && p != ORPHAN && self.head[p as usize] == o {
                    self.make_orphan(v, false);
                }
            }
            a0 = self.next[ai];
        }
    }
}
