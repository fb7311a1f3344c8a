"""The release history and the audit trail: filtered lists paged with a cursor, a compare view, exports."""
