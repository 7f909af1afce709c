using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Micro -- --filter '*'            full runs
// dotnet run -c Release --project bench/Micro -- --filter '*' --job short  quick runs (3 iterations)
BenchmarkSwitcher.FromAssembly(typeof(Bench.Micro.PduParseBenchmarks).Assembly).Run(args);
