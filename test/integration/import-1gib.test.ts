/**
 * The import reader on a 1 GiB file: streamed, memory flat. The check itself lives in
 * test/unit/import-stream.test.ts (200 MiB there); here it runs at 1 GiB, one file at a time.
 */
process.env.STREAMREC_IMPORT_STREAM_MIB = '1024';
await import('../unit/import-stream.test.js');
