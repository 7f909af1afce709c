// The real Linux initiator suite boots QEMU guests that need both cores; nothing else runs beside them.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
