"""Worker handlers: `jobgate worker --handler examples.worker.report:report`."""
