"""The selection function: injection-recovery completeness on real hosts (DESIGN s3 "Selection function")."""
