"""Stages: functions from Parquet to Parquet, each a resumable set of cells."""
