using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Bench.LoadGen;
using Microsoft.Extensions.Logging.Abstractions;

const string Usage = """
nvme-tcp-loadgen: NVMe/TCP load generator (no task per command: one thread per connection that sends, receives
and resubmits; a fixed pool of CIDs).

  nvme-tcp-loadgen [options]                 drive a target
  nvme-tcp-loadgen sink --listen ADDR:PORT   run a trivial NVMe/TCP sink (answers at once, no storage)

  --target ADDR:PORT   target address (127.0.0.1:4420)
  --nqn NQN            subsystem NQN (nqn.2026-01.io.nvmetcptarget:default)
  --nsid N             namespace (1)
  --rw MODE            randread | randwrite | read | write | randrw | rw (randread)
  --mix PCT            reads in percent for randrw/rw (50)
  --bs BYTES           block size, suffix k/m allowed (4k)
  --qd N               commands in flight per connection (32)
  --conns N            I/O connections (1)
  --duration SEC       measured time (5)      --warmup SEC  warm-up, not measured (2)
  --size BYTES         addressed range of the namespace (1g)
  --digests            header and data digests (HDGST+DDGST)
  --disable-sqflow     I/O queues connect with SQ flow control disabled (as nvme connect --disable-sqflow):
                       the target may then end a read with C2HData SUCCESS instead of a response capsule
  --in-capsule BYTES   writes up to this size go in the capsule (8192 = the target's IOCCSZ)
  --verify             write an LBA+seed pattern, check it on every read (never-written blocks must read 0)
  --json FILE          also write the result as JSON
  --label TEXT         name of the run in the output
  --sink               start an in-process sink and measure against it (the generator's own ceiling)
  --in-process         start the real target in this process (memory:1G) and also report GC bytes per I/O
  --poll               with --in-process: the target in polling mode (one reactor)
""";

if (args.Length > 0 && args[0] is "-h" or "--help") { Console.Write(Usage); return 0; }
if (args.Length > 0 && args[0] == "sink")
{
    var ep = args.Length > 2 && args[1] == "--listen" ? IPEndPoint.Parse(args[2]) : new IPEndPoint(IPAddress.Loopback, 4421);
    var sink = new Sink(ep);
    Console.WriteLine($"sink listening on {sink.Endpoint}");
    await sink.RunAsync();
    return 0;
}

var o = new Options();
string rw = "randread";
int? mix = null;
bool inProcessPoll = false;
try
{
    for (int i = 0; i < args.Length; i++)
    {
        string a = args[i];
        string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
        switch (a)
        {
            case "--target": o.Target = IPEndPoint.Parse(Next()); break;
            case "--nqn": o.Nqn = Next(); break;
            case "--nsid": o.Nsid = uint.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--rw": rw = Next(); break;
            case "--mix": mix = int.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--bs": o.BlockSize = (int)Size(Next()); break;
            case "--qd": o.QueueDepth = int.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--conns": o.Connections = int.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--duration": o.Duration = double.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--warmup": o.Warmup = double.Parse(Next(), CultureInfo.InvariantCulture); break;
            case "--size": o.Size = Size(Next()); break;
            case "--digests": o.Digests = true; break;
            case "--disable-sqflow": o.DisableSqFlow = true; break;
            case "--in-capsule": o.InCapsule = (int)Size(Next()); break;
            case "--verify": o.Verify = true; break;
            case "--json": o.Json = Next(); break;
            case "--label": o.Label = Next(); break;
            case "--sink": o.Sink = true; break;
            case "--in-process": o.InProcess = true; break;
            case "--poll": inProcessPoll = true; break;
            default: throw new ArgumentException($"unknown option {a}");
        }
    }
    (o.Random, o.ReadPercent) = rw switch
    {
        "randread" => (true, 100),
        "randwrite" => (true, 0),
        "read" => (false, 100),
        "write" => (false, 0),
        "randrw" => (true, mix ?? 50),
        "rw" => (false, mix ?? 50),
        _ => throw new ArgumentException($"--rw {rw}: randread, randwrite, read, write, randrw or rw"),
    };
    if (o.BlockSize < 512 || o.BlockSize % 512 != 0) throw new ArgumentException("--bs must be a multiple of 512");
    if (o.QueueDepth < 1 || o.QueueDepth > 127) throw new ArgumentException("--qd must be 1..127 (the target's MQES)");
    if (o.Connections < 1 || o.Connections > 64) throw new ArgumentException("--conns must be 1..64");
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.Write(Usage);
    return 2;
}

static long Size(string s)
{
    s = s.Trim().ToLowerInvariant();
    long mult = 1;
    if (s.EndsWith('k')) mult = 1024;
    else if (s.EndsWith('m')) mult = 1 << 20;
    else if (s.EndsWith('g')) mult = 1 << 30;
    if (mult != 1) s = s[..^1];
    return long.Parse(s, CultureInfo.InvariantCulture) * mult;
}

Sink? inProcSink = null;
Target.TargetHost? host = null;
if (o.Sink)
{
    inProcSink = new Sink(new IPEndPoint(IPAddress.Loopback, 0));
    _ = inProcSink.RunAsync();
    o.Target = inProcSink.Endpoint;
}
else if (o.InProcess)
{
    string[] args0 = ["--listen", "127.0.0.1:0", "--namespace", "memory:1G", "--api", "off", "--probes", "off"];
    var cl = Target.Configuration.CommandLine.Parse(inProcessPoll ? [.. args0, "--poll"] : args0);
    if (cl.Errors.Count > 0) throw new InvalidOperationException(string.Join("; ", cl.Errors));
    host = await Target.TargetHost.StartAsync(cl.Config, NullLoggerFactory.Instance, api: cl.Api, telemetry: cl.Telemetry);
    o.Target = host.Endpoints[0];
}

var admin = Wire.Open(o.Target);
var conns = new List<IoConnection>();
try
{
    Wire.Initialize(admin, o.Digests, o.Digests);
    ushort cntlid = (ushort)Wire.Connect(admin, o.Nqn, 0, 31, 0xFFFF, o.Digests, o.Digests).Result;
    Wire.Enable(admin, o.Digests, o.Digests);
    for (int i = 0; i < o.Connections; i++)
    {
        var s = Wire.Open(o.Target);
        int maxH2C = Wire.Initialize(s, o.Digests, o.Digests);
        Wire.Connect(s, o.Nqn, (ushort)(i + 1), 127, cntlid, o.Digests, o.Digests, o.DisableSqFlow);
        conns.Add(new IoConnection(o, s, i, maxH2C));
    }
}
catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ArgumentException)
{
    Console.Error.WriteLine($"error: setup failed: {e.Message}");
    return 1;
}

foreach (var c in conns) c.Start();
await Task.Delay(TimeSpan.FromSeconds(o.Warmup));
long t0 = Stopwatch.GetTimestamp();
long alloc0 = GC.GetTotalAllocatedBytes(precise: true);
int gc0 = GC.CollectionCount(0), gc2 = GC.CollectionCount(2);
var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
foreach (var c in conns) c.MeasureStart = t0;
long tEnd = t0 + (long)(o.Duration * Stopwatch.Frequency);
foreach (var c in conns) c.MeasureEnd = tEnd;
await Task.Delay(TimeSpan.FromSeconds(o.Duration));
while (Stopwatch.GetTimestamp() < tEnd) Thread.SpinWait(100);
long alloc1 = GC.GetTotalAllocatedBytes(precise: true);
int gcs0 = GC.CollectionCount(0) - gc0, gcs2 = GC.CollectionCount(2) - gc2;
var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
var drain = Task.WhenAll(conns.Select(c => c.StopAsync()));
await Task.WhenAny(drain, Task.Delay(5000));

var hist = new Histogram();
long reads = 0, writes = 0, bytes = 0, errors = 0, verifyFailures = 0, digestErrors = 0;
foreach (var c in conns)
{
    hist.Merge(c.Latency);
    reads += c.Reads; writes += c.Writes; bytes += c.BytesMoved; errors += c.Errors; verifyFailures += c.VerifyFailures; digestErrors += c.DigestErrors;
    if (c.Failure != null) { Console.Error.WriteLine($"connection failed: {c.Failure}"); errors++; }
}
double secs = (tEnd - t0) / (double)Stopwatch.Frequency;
long ios = reads + writes;
double iops = ios / secs, mibs = bytes / secs / (1 << 20);
string label = o.Label ?? $"{rw} bs={o.BlockSize} qd={o.QueueDepth} conns={o.Connections} digests={(o.Digests ? "on" : "off")}{(o.DisableSqFlow ? " sqflow=off" : "")}{(o.Sink ? " (sink)" : "")}";
double us(long ns) => ns / 1000.0;
Console.WriteLine(label);
Console.WriteLine(FormattableString.Invariant($"  IOPS {iops:F0}  MiB/s {mibs:F1}  MB/s {bytes / secs / 1e6:F1}  reads {reads}  writes {writes}  errors {errors}  verify-failures {verifyFailures}  digest-errors {digestErrors}"));
Console.WriteLine(FormattableString.Invariant($"  latency us: avg {hist.MeanNs / 1000:F1}  p50 {us(hist.Percentile(50)):F1}  p90 {us(hist.Percentile(90)):F1}  p99 {us(hist.Percentile(99)):F1}  p99.9 {us(hist.Percentile(99.9)):F1}  max {us(hist.MaxNs):F1}"));
Console.WriteLine(FormattableString.Invariant($"  process CPU {cpu.TotalSeconds / secs * 100:F0}% of one core; GC: {(alloc1 - alloc0) / Math.Max(1.0, ios):F1} bytes allocated per I/O in this process, {gcs0} gen0 / {gcs2} gen2 collections{(o.InProcess ? " (target in process)" : "")}"));

if (o.Json != null)
{
    var result = new Dictionary<string, object?>
    {
        ["label"] = label, ["rw"] = rw, ["bs"] = o.BlockSize, ["qd"] = o.QueueDepth, ["conns"] = o.Connections, ["digests"] = o.Digests,
        ["disableSqFlow"] = o.DisableSqFlow, ["sink"] = o.Sink, ["inProcess"] = o.InProcess, ["verify"] = o.Verify, ["seconds"] = secs,
        ["iops"] = iops, ["mibPerSec"] = mibs, ["mbPerSec"] = bytes / secs / 1e6, ["reads"] = reads, ["writes"] = writes,
        ["errors"] = errors, ["verifyFailures"] = verifyFailures, ["digestErrors"] = digestErrors,
        ["latencyUs"] = new Dictionary<string, double>
        {
            ["avg"] = hist.MeanNs / 1000, ["p50"] = us(hist.Percentile(50)), ["p90"] = us(hist.Percentile(90)), ["p99"] = us(hist.Percentile(99)),
            ["p99.9"] = us(hist.Percentile(99.9)), ["max"] = us(hist.MaxNs),
        },
        ["processCpuPercent"] = cpu.TotalSeconds / secs * 100,
        ["processAllocatedBytesPerIo"] = (alloc1 - alloc0) / Math.Max(1.0, ios),
        ["gen0Collections"] = gcs0, ["gen2Collections"] = gcs2,
    };
    await File.WriteAllTextAsync(o.Json, JsonSerializer.Serialize(result, JsonOpts.Indented));
}

var failures = conns.Select(c => c.Failure).ToList();
foreach (var c in conns) c.Close();
admin.Dispose();
if (host != null) await host.DisposeAsync();
inProcSink?.Stop();
return errors > 0 || verifyFailures > 0 || digestErrors > 0 ? 1 : 0;

internal static class JsonOpts
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
