using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Storage;
using Target.Configuration;
using Target.Management;
using Transport.Tcp;

namespace Target;

/// <summary>
/// Composes the target: builds the NVMe model from a validated configuration, opens the backing stores, and
/// hosts the NVMe/TCP listeners on Kestrel. Used by the program and by the integration tests.
/// </summary>
public sealed class TargetHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<ListenOptions> _listeners;

    private readonly ListenOptions? _apiListener;

    private TargetHost(WebApplication app, NvmeTarget target, List<ListenOptions> listeners, TargetManager manager, ListenOptions? apiListener)
    {
        _app = app;
        Target = target;
        _listeners = listeners;
        Manager = manager;
        _apiListener = apiListener;
    }

    public NvmeTarget Target { get; }

    /// <summary>Live changes (namespaces, subsystems, hosts), persisted to the configuration file if there is one.</summary>
    public TargetManager Manager { get; }

    /// <summary>Bound endpoints, in configuration order (real ports even when port 0 was asked for).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => _listeners.Select(l => l.IPEndPoint!).ToList();

    /// <summary>Bound endpoint of the management HTTP API (the real port even when port 0 was asked for);
    /// null when the API is off.</summary>
    public IPEndPoint? ApiEndpoint => _apiListener?.IPEndPoint;

    /// <summary>Builds the model, opens stores and starts listening. Throws <see cref="StoreException"/> for
    /// backing store problems and <see cref="IOException"/> when a port cannot be bound.
    /// <paramref name="api"/> is the management HTTP API listener (see <see cref="CommandLine.Api"/>); null: no API.</summary>
    public static async Task<TargetHost> StartAsync(TargetConfig config, ILoggerFactory loggerFactory, TcpTransportOptions? transportOptions = null,
        string? configPath = null, ApiConfig? api = null)
    {
        var target = BuildModel(config, loggerFactory);
        try
        {
            var manager = new TargetManager(target, config, configPath, loggerFactory.CreateLogger("Target.Management"));
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "nvme-tcp-target" });
            builder.Services.AddSingleton(loggerFactory);
            builder.WebHost.UseKestrelCore();
            if (api != null) ManagementApi.AddServices(builder.Services);
            var listeners = new List<ListenOptions>();
            ListenOptions? apiListener = null;
            var handler = new NvmeTcpConnectionHandler(target, transportOptions ?? new TcpTransportOptions(), loggerFactory);
            builder.WebHost.ConfigureKestrel(k =>
            {
                foreach (var p in config.Ports)
                {
                    k.Listen(IPAddress.Parse(p.Address), p.Port, lo =>
                    {
                        lo.Use(_ => handler.OnConnectedAsync);
                        listeners.Add(lo);
                    });
                }
                if (api != null)
                    k.Listen(IPAddress.Parse(api.Address), api.Port, lo =>
                    {
                        lo.Protocols = HttpProtocols.Http1;
                        apiListener = lo;
                    });
            });
            var app = builder.Build();
            if (api != null) ManagementApi.Map(app, manager, api.Token);
            await app.StartAsync().ConfigureAwait(false);
            for (int i = 0; i < config.Ports.Count; i++)
            {
                var p = config.Ports[i];
                var bound = listeners[i].IPEndPoint!;
                target.AddPort(new Port(p.Id, bound.Address, bound.Port, p.AdvertisedAddress));
            }
            return new TargetHost(app, target, listeners, manager, apiListener);
        }
        catch
        {
            DisposeStores(target);
            target.Dispose();
            throw;
        }
    }

    /// <summary>Creates subsystems and namespaces; opens every backing store (closing them all on failure).</summary>
    public static NvmeTarget BuildModel(TargetConfig config, ILoggerFactory loggerFactory)
    {
        var l = config.Limits;
        var defaults = new TargetLimits();
        var limits = new TargetLimits
        {
            MaxQueueEntries = (ushort)(l.Mqes ?? defaults.MaxQueueEntries),
            Mdts = (byte)(l.Mdts ?? defaults.Mdts),
            InCapsuleDataSize = l.InCapsuleDataSize ?? defaults.InCapsuleDataSize,
            MaxH2CData = l.MaxH2CData ?? defaults.MaxH2CData,
            MaxIoQueues = (ushort)(l.IoQueues ?? defaults.MaxIoQueues),
            C2HSuccessOptimization = l.C2HSuccess ?? defaults.C2HSuccessOptimization,
        };
        var target = new NvmeTarget(limits, loggerFactory);
        try
        {
            foreach (var sc in config.Subsystems) target.AddSubsystem(BuildSubsystem(sc));
            return target;
        }
        catch
        {
            DisposeStores(target);
            target.Dispose();
            throw;
        }
    }

    /// <summary>A subsystem with its namespaces' stores open (all closed again if one fails).</summary>
    public static Subsystem BuildSubsystem(SubsystemConfig sc)
    {
        var sub = new Subsystem(sc.Nqn, SubsystemKind.Nvm, sc.Serial, sc.Model, sc.FirmwareRevision,
            allowAnyHost: sc.AllowAnyHost ?? sc.AllowedHosts.Count == 0, sc.AllowedHosts);
        try
        {
            foreach (var nc in sc.Namespaces) sub.AttachNamespace(OpenNamespace(sc.Nqn, nc));
        }
        catch
        {
            foreach (var ns in sub.Namespaces) ns.Store.Dispose();
            throw;
        }
        return sub;
    }

    public static Namespace OpenNamespace(string subsystemNqn, NamespaceConfig nc)
    {
        long? size = nc.Size != null && Sizes.TryParse(nc.Size, out var s) ? s : null;
        IBlockStore store = nc.Backend switch
        {
            "memory" => new MemoryBlockStore(size ?? throw new StoreException($"namespace {nc.Nsid}: a memory namespace needs a size")),
            "file" => FileBlockStore.Open(nc.Path!, size),
            "block" => FileBlockStore.Open(nc.Path!, null),
            _ => throw new StoreException($"namespace {nc.Nsid}: unknown backend '{nc.Backend}'"),
        };
        try
        {
            return new Namespace(nc.Nsid, store, nc.BlockSize, NamespaceIds.Derive(subsystemNqn, nc.Nsid, nc.Uuid));
        }
        catch (ArgumentException e)
        {
            store.Dispose();
            throw new StoreException($"namespace {nc.Nsid}: {e.Message}");
        }
    }

    private static void DisposeStores(NvmeTarget target)
    {
        foreach (var s in target.Subsystems)
            foreach (var ns in s.Namespaces) ns.Store.Dispose();
    }

    /// <summary>Stops listening, closes every connection, flushes and closes the stores.</summary>
    public async Task StopAsync()
    {
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        Target.Dispose();
        foreach (var s in Target.Subsystems)
            foreach (var ns in s.Namespaces)
            {
                await ns.StopAndDrainAsync().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                try { await ns.Store.FlushAsync().ConfigureAwait(false); } catch (IOException) { }
                ns.Store.Dispose();
            }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
