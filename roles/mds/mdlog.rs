//! MdLog: the actor that makes journal entries durable. The rank frames entries with
//! its `JournalCursor` (so positions are known at once) and sends them here in order;
//! entries that arrive while a write is in flight go into the next write (group
//! commit). Each entry's sender is told once it is durable. The header (write, expire
//! and trim positions) is rewritten after a batch that starts a segment and when the
//! rank moves the expire position; header writes are serialized, and journal objects
//! wholly below the trim position are removed once a header saying so is durable.
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::oneshot;

use super::journal::JournalHeader;
use super::logio::{trim_objects, GroupCommit, Pending};
use super::store::MetaStore;
use super::types::{journal_header_object, journal_object};
use crate::msg::osd::OsdOp;
use crate::msg::payload::Payload;

pub struct MdLog {
    store: Arc<MetaStore>,
    header: JournalHeader,
    gc: GroupCommit<oneshot::Sender<()>>,
    header_inflight: bool,
    header_dirty: bool,
    /// Trim position of the last durable header.
    trimmed: u64,
}

/// Appends a framed entry at `pos`; `done` fires once it is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Append {
    pub pos: u64,
    pub bytes: Vec<u8>,
    pub segment_start: bool,
    pub done: oneshot::Sender<()>,
}

/// Replay may start at `pos` from now on: record it and trim below it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetExpire(pub u64);

impl MdLog {
    /// `durable`: the end of the stream as replay found it (entries go after it).
    pub fn new(store: Arc<MetaStore>, mut header: JournalHeader, durable: u64) -> Self {
        header.write_pos = header.write_pos.max(durable);
        let trimmed = header.trim_pos;
        MdLog { store, header, gc: GroupCommit::new(durable), header_inflight: false, header_dirty: false, trimmed }
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        let Some(batch) = self.gc.take_batch() else { return };
        let store = self.store.clone();
        let os = self.header.object_size;
        let fut = async move {
            for (objno, off, at, n) in batch.writes(os) {
                let data = Payload::from(&batch.bytes[at..at + n]);
                let oid = journal_object(store.rank, objno);
                store.obj.op(&store.pool, &oid, vec![OsdOp::Write { off, data }]).await?;
            }
            Ok::<_, crate::objecter::ObjError>(batch)
        };
        ctx.spawn(fut.into_actor(self).map(|r, act, ctx| match r {
            Ok(batch) => {
                act.gc.batch_done(batch.end());
                act.header.write_pos = act.gc.durable;
                if batch.segment_start {
                    act.write_header(ctx);
                }
                for w in batch.waiters {
                    let _ = w.send(());
                }
                act.kick(ctx);
            }
            Err(e) => super::daemon::respawn(&format!("journal write failed: {e}")),
        }));
    }

    fn write_header(&mut self, ctx: &mut Context<Self>) {
        if self.header_inflight {
            self.header_dirty = true;
            return;
        }
        self.header_inflight = true;
        self.header_dirty = false;
        let h = self.header.clone();
        let store = self.store.clone();
        let old_trim = self.trimmed;
        let fut = async move {
            store.write_full(&journal_header_object(store.rank), h.encode()).await?;
            for objno in trim_objects(old_trim, h.trim_pos, h.object_size) {
                store.remove(&journal_object(store.rank, objno)).await?;
            }
            Ok::<_, crate::objecter::ObjError>(h.trim_pos)
        };
        ctx.spawn(fut.into_actor(self).map(|r, act, ctx| {
            act.header_inflight = false;
            match r {
                Ok(t) => act.trimmed = act.trimmed.max(t),
                Err(e) => tracing::warn!("journal header write failed: {e}"),
            }
            if act.header_dirty {
                act.write_header(ctx);
            }
        }));
    }
}

impl Actor for MdLog {
    type Context = Context<Self>;
}

impl Handler<Append> for MdLog {
    type Result = ();
    fn handle(&mut self, m: Append, ctx: &mut Context<Self>) {
        self.gc.submit(Pending { pos: m.pos, bytes: m.bytes, segment_start: m.segment_start, waiter: m.done });
        self.kick(ctx);
    }
}

impl Handler<SetExpire> for MdLog {
    type Result = ();
    fn handle(&mut self, m: SetExpire, ctx: &mut Context<Self>) {
        let pos = m.0.min(self.gc.durable);
        if pos <= self.header.expire_pos {
            return;
        }
        self.header.expire_pos = pos;
        self.header.trim_pos = pos;
        self.header.write_pos = self.header.write_pos.max(self.gc.durable);
        tracing::debug!(rank = self.store.rank, expire = pos, "journal expired");
        self.write_header(ctx);
    }
}
