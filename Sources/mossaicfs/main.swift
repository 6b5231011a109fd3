// Entry point only. Everything else lives in other files: top-level code here is main-actor
// isolated, and nothing that libfuse calls on its worker threads may be defined here.
MossaicCommand.run(CommandLine.arguments)
