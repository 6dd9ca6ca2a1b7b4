/*
 * chmst_fs.h: file-system calls Swift's Glibc module does not expose (they need _GNU_SOURCE).
 * Used by HMSTCore/Train/TrainingCheckpoint.swift to commit a checkpoint directory as a whole.
 */
#ifndef CHMST_FS_H
#define CHMST_FS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Atomically swaps two existing paths (renameat2 with RENAME_EXCHANGE, Linux >= 3.15).
 * Returns 0, or -1 with errno set (EINVAL/ENOSYS where the file system cannot exchange). */
int chmst_rename_exchange(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
