//! The writer's spill files: moving the records in hand to disk while the store fails or lags,
//! and storing the files again, oldest first, once it takes writes (see `writer.rs` for when).

use std::sync::Arc;
use std::time::Instant;

use super::spill::{Gathered, Spill, SpillError};
use super::writer::{SPILL_BATCH, SPILL_EVERY, Writer};
use crate::error::Error;

impl Writer {
    /// Between the parts of a baseline save (most of a second at 10,000 agents with SQLite),
    /// what came in during the previous part is stored, so the save never fills the buffers.
    /// Behind spill files it goes to a spill file instead once past the pressure mark (the files
    /// are older and are stored first); a failed batch in hand waits for its retry.
    pub(super) fn between_parts(&mut self) -> std::result::Result<(), Arc<Error>> {
        if !self.carry.is_empty() {
            return Ok(());
        }
        if self.p.spill.as_ref().is_some_and(Spill::has_pending) {
            if self.p.source.buffered() >= self.pressure() {
                self.take();
                self.spill_carry();
                self.forget_journal();
            }
            return Ok(());
        }
        self.take();
        self.p.sync.state().carried = self.carry.len() as u64;
        self.write_records()
    }

    /// Moves the records in hand to a spill file (kept in hand if the file cannot be written;
    /// dropped and counted past the spill budget).
    pub(super) fn spill_carry(&mut self) {
        if self.unit > 0 && self.unit < self.carry.len() {
            // The failed batch goes to a file of its own, ahead of what came after it.
            let rest = self.carry.split_off(self.unit);
            self.spill_hand();
            if !self.carry.is_empty() {
                self.carry.extend(rest);
                return;
            }
            self.carry = rest;
        }
        self.spill_hand();
    }

    /// Moves everything in hand to one spill file.
    fn spill_hand(&mut self) {
        self.last_spill = Instant::now();
        let Some(spill) = &mut self.p.spill else { return };
        if self.carry.is_empty() {
            return;
        }
        match spill.write(&self.carry) {
            Ok(n) => {
                self.p.series.spilled.inc_by(n);
                self.carry.clear();
                self.unit = 0;
                self.settle();
                self.p.sync.state().carried = 0;
            }
            Err(e) => {
                let n = self.carry.len();
                if matches!(e, SpillError::Budget { .. }) {
                    self.carry.clear();
                    self.unit = 0;
                    self.settle();
                    self.p.sync.state().carried = 0;
                }
                self.spill_failed(&e, n);
            }
        }
    }

    /// During a write the store is slow to finish: moves the records in hand into `gathered`,
    /// written as one spill file once it holds `limit` records or has waited [`SPILL_EVERY`]
    /// (and by [`Writer::write_gathered`] when the write returns).
    pub(super) fn gather_hand(&mut self, gathered: &mut Option<Gathered>, limit: u64) {
        if self.unit > 0 {
            // A failed batch goes to a file of its own.
            self.spill_carry();
            return;
        }
        self.last_spill = Instant::now();
        let Some(spill) = &mut self.p.spill else { return };
        if self.carry.is_empty() {
            return;
        }
        let file = gathered.get_or_insert_with(|| Gathered::new(spill));
        if let Err(e) = file.push(&self.carry) {
            self.spill_failed(&SpillError::Io(e), self.carry.len());
            return;
        }
        self.carry.clear();
        if file.count() >= limit || file.age() >= SPILL_EVERY {
            self.write_gathered(gathered);
        }
    }

    /// Writes the gathered records to their spill file. On a disk error they are back in hand,
    /// ahead of anything newer; past the budget they are dropped and counted.
    pub(super) fn write_gathered(&mut self, gathered: &mut Option<Gathered>) {
        let Some(file) = gathered.take() else { return };
        let Some(spill) = &mut self.p.spill else { return };
        let n = file.count();
        match spill.write_gathered(file) {
            Ok(n) => {
                self.p.series.spilled.inc_by(n);
            }
            Err((e, mut back)) => {
                back.append(&mut self.carry);
                self.carry = back;
                self.spill_failed(&e, usize::try_from(n).unwrap_or(usize::MAX));
            }
        }
    }

    /// Turns the overflow segments (records that found the buffers full) into spill files, to
    /// be stored in order with the others: the journal's in durable mode, else the spill
    /// directory's (see [`super::overflow`]).
    pub(super) fn finish_overflow(&mut self) {
        if let Some(journal) = &self.p.journal {
            journal.finish_overflow();
        }
        let Some(overflow) = &self.p.overflow else { return };
        match overflow.finish() {
            Ok(None) => {}
            Ok(Some(finished)) => {
                self.p.series.spilled.inc_by(finished.records);
                if let Some(spill) = &mut self.p.spill {
                    spill.adopt(finished.bytes);
                }
            }
            Err((e, records)) => {
                self.p.series.spill_failures.inc();
                self.p.core.drop_records("spill_failed", records);
                tracing::error!(error = %e, records, "cannot finish a spill overflow segment: its records are lost");
            }
        }
    }

    /// Reports a spill file that could not be written: past the budget its records are dropped
    /// (counted); on a disk error they stay in memory.
    pub(super) fn spill_failed(&self, e: &SpillError, records: usize) {
        match e {
            SpillError::Budget { .. } => {
                self.p.core.drop_records("spill_full", records as u64);
                tracing::error!(error = %e, records, "ace spill budget reached (ACE_SPILL_MAX_BYTES): records dropped");
            }
            SpillError::Io(_) => {
                self.p.series.spill_failures.inc();
                tracing::error!(error = %e, records, "cannot write a spill file; records stay in memory");
            }
        }
    }

    /// Stores spilled files, oldest first; stops at the first failure (the file stays spilled).
    pub(super) fn replay_spilled(&mut self) -> std::result::Result<(), Arc<Error>> {
        let Some(spill) = &self.p.spill else { return Ok(()) };
        for file in spill.pending() {
            let Some(spill) = &self.p.spill else { break };
            let Some(claimed) = spill.claim(&file) else { continue };
            let size = std::fs::metadata(&claimed).map_or(0, |m| m.len());
            // Reading a file takes a few milliseconds: the buffers are drained first if they
            // fill (into hand; the write below moves them on to disk if they keep filling).
            if self.carry.is_empty() && self.p.source.buffered() >= self.pressure() / 2 {
                self.take();
            }
            let records = match Spill::read(&claimed) {
                Ok(read) => {
                    if read.unreadable > 0 {
                        // A torn or edited file: its good lines are stored, its bad ones set
                        // aside for a person and counted, never silently skipped.
                        self.p.core.drop_records("spill_unreadable", read.unreadable);
                        tracing::error!(
                            file = %claimed.display(),
                            lines = read.unreadable,
                            aside = %read.aside.as_ref().map_or_else(String::new, |p| p.display().to_string()),
                            "a spill file has lines that cannot be read; they were set aside, the rest is stored"
                        );
                    }
                    read.records
                }
                Err(e) => {
                    // Unreadable: set aside for a person, never deleted.
                    let aside = file.with_extension("unreadable");
                    let _ = std::fs::rename(&claimed, &aside);
                    self.p.core.drop_records("spill_unreadable", 1);
                    tracing::error!(file = %aside.display(), error = %e, "a spill file cannot be read; it was set aside");
                    continue;
                }
            };
            let started = Instant::now();
            let n = records.len() as u64;
            let (_, outcome) = self.store_batch(records, self.retry_at.is_some(), true);
            if let Err(e) = outcome {
                if let Some(spill) = &self.p.spill {
                    spill.release(&claimed, &file);
                }
                return Err(e);
            }
            self.p.core.time_query("append", started.elapsed().as_secs_f64());
            if let Some(spill) = &mut self.p.spill {
                spill.remove(&claimed, size);
            }
            self.p.series.replayed.inc_by(n);
            self.p.series.persisted.inc_by(n);
            self.p.sync.state().persisted += n;
            // Keep the buffers from filling while the backlog is written: what came in meanwhile
            // goes into hand, and to a newer spill file (replayed after this one) if it piles up.
            if self.carry.is_empty() {
                self.take();
            }
            if self.carry.len() >= SPILL_BATCH {
                self.spill_carry();
            }
        }
        Ok(())
    }
}
