//! What a deploy must do, given the status a stack is in before it.

/// The decision for one status (see the table in `shared/reference/cloudformation.md`).
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

pub(crate) fn in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS")
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
