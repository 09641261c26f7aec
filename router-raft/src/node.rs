//! A router node: the Raft groups it hosts (the meta group and its shard
//! replicas) over one RocksDB and one set of peer channels.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use openraft::BasicNode;
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::LinearizableReadError;
use openraft::errors::RaftError;

use confab_net::ClientTls;

use crate::config::RouterConfig;
use crate::error::Result;
use crate::error::RouterError;
use crate::lease::Leases;
use crate::network::NetworkFactory;
use crate::network::Peers;
use crate::read_batch::ReadBatcher;
use crate::remote::Remotes;
use crate::sm::GroupData;
use crate::sm::StateMachine;
use crate::sm::meta::MetaCommand;
use crate::sm::meta::MetaState;
use crate::sm::meta::NodeRecord;
use crate::sm::meta::NodeRecordState;
use crate::sm::meta::ShardRecord;
use crate::sm::meta::initial_shards;
use crate::sm::shard::ShardCommand;
use crate::sm::shard::ShardReply;
use crate::store::LogStore;
use crate::store::NodeDb;
use crate::tombstone::Tombstones;
use crate::types::Command;
use crate::types::ForwardToLeader;
use crate::types::GroupId;
use crate::types::META_GROUP;
use crate::types::NodeId;
use crate::types::Reply;
use crate::types::TypeConfig;
use crate::write_batch::WriteBatcher;

/// The Raft of one group.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// One hosted replica of a group.
#[derive(Clone)]
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub sm: StateMachine,
    /// Coalesces concurrent linearizable reads of this group.
    pub reads: Arc<ReadBatcher>,
    /// Coalesces concurrent session writes of this group into one entry.
    pub writes: Arc<WriteBatcher>,
}

impl Group {
    /// The leader this replica knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    pub fn is_leader(&self, me: NodeId) -> bool {
        self.leader() == Some(me)
    }
}

pub struct Node {
    pub id: NodeId,
    pub addr: String,
    pub config: RouterConfig,
    pub peers: Peers,
    pub leases: Leases,
    db: NodeDb,
    raft_config: Arc<openraft::Config>,
    groups: RwLock<HashMap<GroupId, Group>>,
    /// Serializes group creation: two Raft instances must never share a log.
    creating: tokio::sync::Mutex<()>,
    /// The data dir held no group when the node opened (a new or wiped node).
    pub fresh: bool,
    /// Where the shard replicas this node gave away went.
    pub tombstones: Tombstones,
    /// Channels to the other routers' replica plane.
    pub remotes: Remotes,
    /// The processes that announced their metrics address (`/sd`).
    pub targets: crate::targets::Targets,
}

/// The id of a cluster bootstrapped from `peers` under `name`: the same on
/// every bootstrapping peer (same list, same name), different for another
/// peer list. Never 0 (which means "not known").
pub fn cluster_id_of(name: &str, peers: &BTreeMap<NodeId, String>) -> u64 {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    for (id, addr) in peers {
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(addr.as_bytes());
        bytes.push(0);
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0).max(1)
}

impl Node {
    /// Opens the node's database and restarts every group it hosted.
    pub async fn open(
        config: RouterConfig,
        addr: String,
        tls: Option<ClientTls>,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)?;
        let db = NodeDb::open(&config.data_dir.join("raft"))?;
        let raft_config = Arc::new(config.raft.to_openraft()?);
        let hosted = db.hosted_groups()?;
        let tombstones = Tombstones::open(db.clone(), config.tombstone_ttl())?;
        let node = Arc::new(Node {
            id: config.id,
            addr,
            peers: Peers::new(Duration::from_millis(config.raft.rpc_timeout_ms), tls.clone()),
            leases: Leases::new(Duration::from_millis(config.lease_ms)),
            config,
            db,
            raft_config,
            groups: RwLock::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            fresh: hosted.is_empty(),
            tombstones,
            remotes: Remotes::new(tls),
            targets: Default::default(),
        });
        node.peers.set_addr(node.id, &node.addr);
        if let Some(id) = node.db.cluster_id()? {
            node.peers.set_cluster_id(id);
        }
        for group in hosted {
            node.start_group(group).await?;
        }
        Ok(node)
    }

    /// Starts (or returns) the local replica of `group`.
    pub async fn start_group(&self, group: GroupId) -> anyhow::Result<Group> {
        let _creating = self.creating.lock().await;
        if let Some(g) = self.group(group) {
            return Ok(g);
        }
        self.db.set_hosted(group).await?;
        // A replica of a shard this node once gave away is back.
        self.tombstones.clear(group);
        let log = LogStore::new(self.db.clone(), group);
        let sm = StateMachine::new(group, Some(self.db.clone()));
        let network = NetworkFactory::new(self.peers.clone(), group);
        let raft = Raft::new(self.id, self.raft_config.clone(), network, log, sm.clone()).await?;
        let g = Group {
            id: group,
            raft,
            sm,
            reads: Arc::default(),
            writes: Arc::default(),
        };
        let mut groups = self.groups.write().expect("group table lock poisoned");
        Ok(groups.entry(group).or_insert(g).clone())
    }

    pub fn group(&self, group: GroupId) -> Option<Group> {
        self.groups
            .read()
            .expect("group table lock poisoned")
            .get(&group)
            .cloned()
    }

    pub fn groups(&self) -> Vec<Group> {
        let mut out: Vec<Group> = self
            .groups
            .read()
            .expect("group table lock poisoned")
            .values()
            .cloned()
            .collect();
        out.sort_by_key(|g| g.id);
        out
    }

    /// The meta group replica; every node hosts one (voter or learner).
    pub fn meta(&self) -> Result<Group> {
        self.group(META_GROUP)
            .ok_or_else(|| RouterError::NotReady("this node hosts no meta replica yet".into()))
    }

    /// A copy of this node's view of the cluster map.
    pub fn meta_state(&self) -> Result<MetaState> {
        self.with_meta(MetaState::clone)
    }

    /// Runs `f` on the applied cluster map without copying it (the hot
    /// paths route every request through it). `f` runs under the meta state
    /// machine's read lock: keep it short, never await in it.
    pub fn with_meta<R>(&self, f: impl FnOnce(&MetaState) -> R) -> Result<R> {
        let meta = self.meta()?;
        let st = meta.sm.read();
        match &st.data {
            GroupData::Meta(m) if m.is_bootstrapped() => Ok(f(m)),
            GroupData::Meta(_) => Err(RouterError::NotReady(
                "the cluster map is not bootstrapped yet".into(),
            )),
            GroupData::Shard(_) => Err(RouterError::Internal("group 0 holds shard data".into())),
        }
    }

    /// Address of a node, from the cluster map or the peer table.
    pub fn node_addr(&self, id: NodeId) -> String {
        self.peers.addr(id).unwrap_or_default()
    }

    /// Creates a new cluster from a peer list; on a restart this is a no-op.
    ///
    /// Every peer computes the same initial layout from the same list. The
    /// smallest id initializes the meta group, the first replica of each
    /// shard initializes it, and whichever node leads the meta group writes
    /// the map.
    pub async fn bootstrap(self: &Arc<Self>, peers: &BTreeMap<NodeId, String>) -> anyhow::Result<()> {
        for (id, addr) in peers {
            self.peers.set_addr(*id, addr);
        }
        if !self.fresh {
            // The data dir holds the cluster: its groups were started from
            // disk. Recomputing the initial layout here would recreate
            // replicas that have since moved away.
            tracing::info!("restart from the data dir; bootstrap skipped");
            return Ok(());
        }
        let c = &self.config.cluster;
        self.adopt_cluster_id(cluster_id_of(&c.name, peers)).await?;
        let ids: Vec<NodeId> = peers.keys().copied().collect();
        let shards = initial_shards(c.slots, c.shards, c.replicas, &ids);
        let meta = self.start_group(META_GROUP).await?;
        let members = |ids: &[NodeId]| -> BTreeMap<NodeId, BasicNode> {
            ids.iter()
                .map(|id| {
                    (
                        *id,
                        BasicNode {
                            addr: peers[id].clone(),
                        },
                    )
                })
                .collect()
        };
        let meta_voters: Vec<NodeId> = ids.iter().copied().take(c.meta_voters).collect();
        if ids.first() == Some(&self.id) && !meta.raft.is_initialized().await? {
            meta.raft.initialize(members(&meta_voters)).await?;
        }
        for shard in &shards {
            if !shard.replicas.contains(&self.id) {
                continue;
            }
            let g = self.start_group(shard.id).await?;
            if shard.replicas[0] == self.id && !g.raft.is_initialized().await? {
                g.raft.initialize(members(&shard.replicas)).await?;
            }
        }
        let nodes = peers
            .iter()
            .map(|(id, addr)| NodeRecord {
                id: *id,
                addr: addr.clone(),
                state: NodeRecordState::Up,
            })
            .collect();
        let cmd = MetaCommand::Bootstrap {
            slots: c.slots,
            nodes,
            shards,
        };
        // Peers beyond the meta voters follow the meta group as learners.
        let learners: BTreeMap<NodeId, BasicNode> = members(&ids)
            .into_iter()
            .filter(|(id, _)| !meta_voters.contains(id))
            .collect();
        let node = self.clone();
        tokio::spawn(async move { node.write_bootstrap_map(cmd, learners).await });
        Ok(())
    }

    /// Records the id of the cluster this node belongs to (from bootstrap,
    /// or from the join answer) and sends it with every Raft message from
    /// now on. A node that already belongs to another cluster refuses.
    pub async fn adopt_cluster_id(&self, id: u64) -> anyhow::Result<()> {
        match self.db.cluster_id()? {
            Some(mine) if mine == id => {}
            Some(mine) => anyhow::bail!(
                "this node belongs to cluster {mine:016x}, not {id:016x}: wrong seed or peer list?"
            ),
            None => self.db.set_cluster_id(id).await?,
        }
        self.peers.set_cluster_id(id);
        Ok(())
    }

    /// Proposes the initial map from whichever node leads the meta group,
    /// and adds the other peers to it as learners.
    async fn write_bootstrap_map(&self, cmd: MetaCommand, learners: BTreeMap<NodeId, BasicNode>) {
        loop {
            if self.meta_state().is_ok() && learners.is_empty() {
                return;
            }
            if let Ok(meta) = self.meta()
                && meta.is_leader(self.id)
            {
                if self.meta_state().is_err() {
                    match self.propose(&meta, Command::Meta(cmd.clone())).await {
                        Ok(_) => tracing::info!("cluster map bootstrapped"),
                        Err(error) => tracing::warn!(%error, "writing the initial cluster map"),
                    }
                }
                let mut added = 0;
                for (id, n) in &learners {
                    let known = meta
                        .raft
                        .learner_ids()
                        .chain(meta.raft.voter_ids())
                        .any(|l| l == *id);
                    if known {
                        added += 1;
                        continue;
                    }
                    match meta.raft.add_learner(*id, n.clone(), false).await {
                        Ok(_) => added += 1,
                        Err(error) => tracing::warn!(%error, node = id, "adding a meta learner"),
                    }
                }
                if added == learners.len() && self.meta_state().is_ok() {
                    return;
                }
            } else if self.meta_state().is_ok() {
                // Another node leads the meta group: it adds the learners.
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Proposes `cmd` to `group` and waits until it is applied here.
    pub async fn propose(&self, group: &Group, cmd: Command) -> Result<Reply> {
        self.propose_at(group, cmd).await.map(|(reply, _)| reply)
    }

    /// [`Node::propose`], also returning the entry's log index.
    pub async fn propose_at(&self, group: &Group, cmd: Command) -> Result<(Reply, u64)> {
        let label = command_label(&cmd);
        let timer = crate::metrics::PROPOSAL_SECONDS
            .with_label_values(&[label])
            .start_timer();
        let res = group.raft.client_write(cmd).await;
        timer.observe_duration();
        match res {
            Ok(resp) => match resp.data {
                Reply::WrongGroup => Err(RouterError::Internal(format!(
                    "command {label} sent to group {} of the other kind",
                    group.id
                ))),
                other => Ok((other, resp.log_id.index())),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.not_leader(group.id, &f))
            }
            Err(e) => Err(RouterError::NotReady(format!("group {}: {e}", group.id))),
        }
    }

    /// Proposes a shard command to `group`; its reply and log index.
    pub async fn propose_shard(&self, group: &Group, cmd: ShardCommand) -> Result<(ShardReply, u64)> {
        match self.propose_at(group, Command::Shard(cmd)).await? {
            (Reply::Shard(r), index) => Ok((r, index)),
            (other, _) => Err(RouterError::Internal(format!("shard answered {other:?}"))),
        }
    }

    /// A session write to `group`, proposed together with the group's
    /// concurrent ones ([`WriteBatcher`]); its reply and log index.
    pub async fn propose_batched(
        self: &Arc<Self>,
        group: &Group,
        cmd: ShardCommand,
    ) -> Result<(ShardReply, u64)> {
        let (node, target) = (self.clone(), group.clone());
        let propose = move |cmd| {
            let (node, target) = (node.clone(), target.clone());
            async move { node.propose_shard(&target, cmd).await }
        };
        group.writes.propose(group.id, cmd, propose).await
    }

    /// Waits until a read of `group` is linearizable, with one check for
    /// every batch of concurrent readers ([`ReadBatcher`]).
    pub async fn linearize_batched(self: &Arc<Self>, group: &Group) -> Result<()> {
        let (node, target) = (self.clone(), group.clone());
        let check = move || {
            let (node, target) = (node.clone(), target.clone());
            async move { node.linearize(&target).await }
        };
        group.reads.linearize(group.id, check).await
    }

    /// Waits until a read of `group` on this node is linearizable: leader
    /// lease first, read-index when the lease cannot vouch.
    pub async fn linearize(&self, group: &Group) -> Result<()> {
        let lease = self.config.read == crate::config::ReadMode::Lease;
        let res = match group.raft.ensure_linearizable(self.config.read.policy()).await {
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) if lease => {
                group.raft.ensure_linearizable(ReadPolicy::ReadIndex).await
            }
            other => other,
        };
        match res {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(self.not_leader(group.id, &f))
            }
            Err(e) => Err(RouterError::NotReady(format!("group {}: {e}", group.id))),
        }
    }

    pub fn not_leader(&self, group: GroupId, f: &ForwardToLeader) -> RouterError {
        let leader_addr = match (&f.leader_node, f.leader_id) {
            (Some(n), _) => n.addr.clone(),
            (None, Some(id)) => self.node_addr(id),
            (None, None) => String::new(),
        };
        RouterError::NotLeader {
            group,
            leader_id: f.leader_id,
            leader_addr,
        }
    }

    /// NotLeader for a group this node hosts, from its current view.
    pub fn not_leader_of(&self, group: &Group) -> RouterError {
        let leader_id = group.leader();
        RouterError::NotLeader {
            group: group.id,
            leader_id,
            leader_addr: leader_id.map(|id| self.node_addr(id)).unwrap_or_default(),
        }
    }

    /// Before a clean stop: hands every leadership this node holds to the
    /// most caught-up other voter of the group, and waits (at most `budget`)
    /// until the groups have new leaders, so writes see no election timeout.
    /// Returns how many groups still had this node as leader at the end.
    pub async fn hand_off_leaderships(&self, budget: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + budget;
        let led: Vec<Group> = self
            .groups()
            .into_iter()
            .filter(|g| g.is_leader(self.id))
            .collect();
        for g in &led {
            let m = g.raft.metrics().borrow_watched().clone();
            let matched = |id: &NodeId| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map_or(0, |l| l.index())
            };
            let target = m
                .membership_config
                .membership()
                .voter_ids()
                .filter(|&id| id != self.id)
                .max_by_key(matched);
            let Some(target) = target else { continue };
            if let Err(error) = g.raft.trigger().transfer_leader(target).await {
                tracing::warn!(group = g.id, target, %error, "leader hand-off");
            }
        }
        loop {
            // Done once this replica follows a new leader (stepping down
            // alone is not enough: the target may still be campaigning).
            let still = led
                .iter()
                .filter(|g| g.leader().is_none_or(|l| l == self.id))
                .count();
            if still == 0 || tokio::time::Instant::now() >= deadline {
                if !led.is_empty() {
                    tracing::info!(
                        groups = led.len(),
                        still_leading = still,
                        "leaderships handed off"
                    );
                }
                return still;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops this node's replica of `group` and deletes its data; false
    /// when it hosted none. `moved_to`, the shard's record after the move,
    /// is kept as a tombstone (recorded first, so no caller falls between
    /// the replica and its tombstone).
    pub async fn drop_group(&self, group: GroupId, moved_to: Option<ShardRecord>) -> Result<bool> {
        let _creating = self.creating.lock().await;
        if let Some(record) = moved_to
            && self.group(group).is_some()
        {
            self.tombstones.record(record).map_err(|e| {
                RouterError::Internal(format!("recording the tombstone of group {group}: {e}"))
            })?;
        }
        let Some(g) = self
            .groups
            .write()
            .expect("group table lock poisoned")
            .remove(&group)
        else {
            return Ok(false);
        };
        if let Err(error) = g.raft.shutdown().await {
            tracing::warn!(group, %error, "raft shutdown of a dropped replica");
        }
        LogStore::new(self.db.clone(), group)
            .destroy()
            .map_err(|e| RouterError::Internal(format!("deleting group {group}: {e}")))?;
        tracing::info!(group, "replica dropped");
        Ok(true)
    }

    /// Stops every group, then the database's background work.
    pub async fn shutdown(&self) {
        for g in self.groups() {
            if let Err(error) = g.raft.shutdown().await {
                tracing::warn!(group = g.id, %error, "raft shutdown");
            }
        }
        self.db.close();
    }
}

fn command_label(cmd: &Command) -> &'static str {
    match cmd {
        Command::Shard(ShardCommand::Login { .. }) => "login",
        Command::Shard(ShardCommand::Logout { .. }) => "logout",
        Command::Shard(ShardCommand::PurgeGateway { .. }) => "purge_gateway",
        Command::Shard(ShardCommand::Batch(_)) => "batch",
        Command::Meta(_) => "meta",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_id_is_the_peer_list_and_the_name() {
        let peers = |a: &str| BTreeMap::from([(1, "10.0.0.1:7101".to_owned()), (2, a.to_owned())]);
        let id = cluster_id_of("confab", &peers("10.0.0.2:7101"));
        assert_ne!(id, 0);
        assert_eq!(id, cluster_id_of("confab", &peers("10.0.0.2:7101")), "stable");
        assert_ne!(
            id,
            cluster_id_of("confab", &peers("10.0.0.3:7101")),
            "another list"
        );
        assert_ne!(
            id,
            cluster_id_of("staging", &peers("10.0.0.2:7101")),
            "another name"
        );
    }
}
