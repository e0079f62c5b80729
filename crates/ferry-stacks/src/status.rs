//! What a deploy must do, given the status a stack is in before it.
//!
//! | status before deploy | meaning | the engine |
//! |---|---|---|
//! | none, `DELETE_COMPLETE` | never created, or deleted (the name is free) | creates |
//! | `CREATE_COMPLETE`, `UPDATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, `IMPORT_COMPLETE` | stable | updates (or finds nothing to do) |
//! | `ROLLBACK_COMPLETE`, `ROLLBACK_FAILED`, `REVIEW_IN_PROGRESS` | first creation failed, or only an unexecuted CREATE change set: can only be deleted | deletes, waits, creates (and says so) |
//! | `*_IN_PROGRESS` | another operation runs | waits (within the deploy's deadline), then decides again |
//! | `UPDATE_ROLLBACK_FAILED` | stuck | stops naming ContinueUpdateRollback, or calls it when asked |
//! | `CREATE_FAILED`, `UPDATE_FAILED` | paused (rollback disabled) | stops: roll back or delete it |
//! | `DELETE_FAILED` | stuck | stops |

/// The decision for one status (the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// No stack (or a deleted one, whose name is free again): create.
    Create,
    /// A stable stack: update (or find nothing to do).
    Update,
    /// The stack can only be deleted (its first creation failed, or it only holds an unexecuted
    /// CREATE change set): delete it, wait, create (and say so).
    Recreate,
    /// Another operation is running: wait for it (bounded), then decide again.
    Wait,
    /// `UPDATE_ROLLBACK_FAILED`: stuck until ContinueUpdateRollback.
    UpdateRollbackFailed,
    /// `CREATE_FAILED` / `UPDATE_FAILED` of a stack with rollback disabled: paused.
    Paused,
    /// `DELETE_FAILED`: stuck.
    DeleteFailed,
}

pub fn disposition(status: Option<&str>) -> Disposition {
    match status {
        None | Some("DELETE_COMPLETE") => Disposition::Create,
        Some(
            "CREATE_COMPLETE"
            | "UPDATE_COMPLETE"
            | "UPDATE_ROLLBACK_COMPLETE"
            | "IMPORT_COMPLETE"
            | "IMPORT_ROLLBACK_COMPLETE",
        ) => Disposition::Update,
        Some("ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "REVIEW_IN_PROGRESS") => {
            Disposition::Recreate
        }
        Some("UPDATE_ROLLBACK_FAILED") => Disposition::UpdateRollbackFailed,
        Some("CREATE_FAILED" | "UPDATE_FAILED" | "IMPORT_ROLLBACK_FAILED") => Disposition::Paused,
        Some("DELETE_FAILED") => Disposition::DeleteFailed,
        Some(s) if s.ends_with("_IN_PROGRESS") => Disposition::Wait,
        // A status this code does not know yet: treat it like a busy stack, the wait is bounded.
        Some(_) => Disposition::Wait,
    }
}

/// Whether a stack in `status` is waited for: an operation runs, or a status this code does not
/// know (the emulator's `CREATE_PENDING`), as [`disposition`] says. (Taken for an end instead,
/// the deploy decided again at once, to wait again: a busy loop until a second Ctrl-C.)
pub(crate) fn in_progress(status: &str) -> bool {
    // `REVIEW_IN_PROGRESS` too, which a deploy recreates from: just after a change set of a new
    // stack is executed, a read may still say it.
    status.ends_with("_IN_PROGRESS") || disposition(Some(status)) == Disposition::Wait
}

/// Whether a stack in `status` is in a stable, usable state that a successful deploy leaves
/// (what a record of a successful deploy expects to find).
pub fn is_stable(status: &str) -> bool {
    disposition(Some(status)) == Disposition::Update
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_of_the_reference_table() {
        use Disposition::*;
        let table = [
            (None, Create),
            (Some("DELETE_COMPLETE"), Create),
            (Some("REVIEW_IN_PROGRESS"), Recreate),
            (Some("CREATE_COMPLETE"), Update),
            (Some("UPDATE_COMPLETE"), Update),
            (Some("UPDATE_ROLLBACK_COMPLETE"), Update),
            (Some("IMPORT_COMPLETE"), Update),
            (Some("ROLLBACK_COMPLETE"), Recreate),
            (Some("ROLLBACK_FAILED"), Recreate),
            (Some("CREATE_IN_PROGRESS"), Wait),
            (Some("UPDATE_IN_PROGRESS"), Wait),
            (Some("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), Wait),
            (Some("UPDATE_ROLLBACK_IN_PROGRESS"), Wait),
            (Some("DELETE_IN_PROGRESS"), Wait),
            (Some("UPDATE_ROLLBACK_FAILED"), UpdateRollbackFailed),
            (Some("CREATE_FAILED"), Paused),
            (Some("UPDATE_FAILED"), Paused),
            (Some("DELETE_FAILED"), DeleteFailed),
        ];
        for (status, expected) in table {
            assert_eq!(disposition(status), expected, "{status:?}");
        }
    }
}
