using System.Reflection;

namespace Ferry.Tests;

/// <summary>The dependency rules of STYLE.md, checked on the compiled assemblies (Nova's hacking checks N307/N311).</summary>
public sealed class ArchitectureTests
{
    private static readonly Assembly s_core = typeof(Ferry.Core.Domain.Instance).Assembly;
    private static readonly Assembly s_virt = typeof(Ferry.Virt.IComputeDriver).Assembly;
    private static readonly Assembly s_compute = typeof(Ferry.Compute.ComputeManager).Assembly;
    private static readonly Assembly s_controlPlane = typeof(Ferry.ControlPlane.ControlPlaneOptions).Assembly;

    private static string[] References(Assembly assembly) =>
        [.. assembly.GetReferencedAssemblies().Select(a => a.Name!)];

    [Fact]
    public void Core_ReferencesNoFerryProjectAndNoInfrastructure()
    {
        var refs = References(s_core);
        Assert.DoesNotContain(refs, r => r.StartsWith("Ferry.", StringComparison.Ordinal));
        Assert.DoesNotContain(refs, r => r.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)
            || r.StartsWith("Microsoft.EntityFrameworkCore", StringComparison.Ordinal)
            || r.StartsWith("Microsoft.Data.Sqlite", StringComparison.Ordinal)
            || r.StartsWith("RabbitMQ", StringComparison.Ordinal));
    }

    [Fact]
    public void Virt_ReferencesOnlyCore()
    {
        var ferry = References(s_virt).Where(r => r.StartsWith("Ferry.", StringComparison.Ordinal));
        Assert.Equal(["Ferry.Core"], ferry);
        Assert.DoesNotContain(References(s_virt), r => r.StartsWith("Microsoft.Data.Sqlite", StringComparison.Ordinal));
    }

    [Fact]
    public void Compute_NeverSeesTheDatabaseOrControlPlane()
    {
        var refs = References(s_compute);
        Assert.Equal(["Ferry.Core", "Ferry.Virt"], refs.Where(r => r.StartsWith("Ferry.", StringComparison.Ordinal)).Order());
        Assert.DoesNotContain(refs, r => r.StartsWith("Microsoft.Data.Sqlite", StringComparison.Ordinal) || r.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal));
    }

    [Fact]
    public void ControlPlane_ReachesHostsOnlyThroughCore()
    {
        var ferry = References(s_controlPlane).Where(r => r.StartsWith("Ferry.", StringComparison.Ordinal));
        Assert.Equal(["Ferry.Core"], ferry);
    }

    [Fact]
    public void FakeDriver_DoesNotDependOnOtherDrivers()
    {
        var fake = s_virt.GetTypes().Where(t => t.Namespace == "Ferry.Virt.Fake");
        Assert.All(fake, t => Assert.DoesNotContain(DependenciesOf(t), d => d.Namespace?.StartsWith("Ferry.Virt.Qemu", StringComparison.Ordinal) == true));
    }

    [Theory]
    [InlineData("Ferry.ControlPlane.Api", "Ferry.ControlPlane.Scheduler")]
    [InlineData("Ferry.ControlPlane.Api", "Ferry.ControlPlane.Conductor")]
    [InlineData("Ferry.ControlPlane.Persistence", "Ferry.ControlPlane.Api")]
    [InlineData("Ferry.ControlPlane.Persistence", "Ferry.ControlPlane.Conductor")]
    [InlineData("Ferry.ControlPlane.Persistence", "Ferry.ControlPlane.Scheduler")]
    [InlineData("Ferry.ControlPlane.Persistence", "Ferry.ControlPlane.Placement")]
    [InlineData("Ferry.ControlPlane.Scheduler", "Ferry.ControlPlane.Conductor")]
    [InlineData("Ferry.ControlPlane.Scheduler", "Ferry.ControlPlane.Api")]
    [InlineData("Ferry.ControlPlane.Placement", "Ferry.ControlPlane.Conductor")]
    [InlineData("Ferry.ControlPlane.Placement", "Ferry.ControlPlane.Scheduler")]
    public void ControlPlaneFolder_DoesNotReachInto(string from, string forbidden)
    {
        var offenders = s_controlPlane.GetTypes()
            .Where(t => t.Namespace?.StartsWith(from, StringComparison.Ordinal) == true)
            .SelectMany(t => DependenciesOf(t).Where(d => d.Namespace?.StartsWith(forbidden, StringComparison.Ordinal) == true).Select(d => $"{t.Name} → {d.FullName}"))
            .ToList();
        Assert.Empty(offenders);
    }

    [Fact]
    public void RpcMessages_AreSealedRecords()
    {
        var messages = s_core.GetTypes().Where(t => t.Namespace?.StartsWith("Ferry.Core.Rpc.", StringComparison.Ordinal) == true
            && (t.Name.EndsWith("Request", StringComparison.Ordinal) || t.Name.EndsWith("Reply", StringComparison.Ordinal)));
        Assert.NotEmpty(messages);
        Assert.All(messages, t =>
        {
            Assert.True(t.IsSealed, $"{t.Name} is not sealed");
            Assert.NotNull(t.GetMethod("<Clone>$"));
            Assert.NotNull(Ferry.Core.Rpc.RpcJsonContext.Default.GetTypeInfo(t));
        });
    }

    [Fact]
    public void LogEventIds_AreUniqueAcrossFerry()
    {
        // An operator filters logs by event id; two messages under one id make that filter lie.
        Assembly[] ferry = [s_core, s_virt, s_compute, s_controlPlane, typeof(Ferry.Host.Roles.RoleHosts).Assembly];
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        var ids = ferry.SelectMany(a => a.GetTypes()).SelectMany(t => t.GetMethods(all))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<Microsoft.Extensions.Logging.LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .Select(x => (Id: x.Attribute!.EventId, Name: $"{x.Method.DeclaringType!.FullName}.{x.Method.Name}"))
            .ToList();
        Assert.NotEmpty(ids);
        var shared = ids.GroupBy(x => x.Id).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(x => x.Name))}");
        Assert.Empty(shared);
    }

    /// <summary>Types a type names in its fields, constructors, method signatures and base types.</summary>
    /// <summary>
    /// The stores converted to async I/O (issue 10): every public method that reaches the database returns a task, so a
    /// caller cannot block a thread-pool thread on a PostgreSQL round trip by accident. The few synchronous methods kept
    /// for callers not converted yet are listed by name; each must still exist (drop it here when it goes).
    /// </summary>
    public static TheoryData<Type, string[]> AsyncStores => new()
    {
        { typeof(Ferry.ControlPlane.Persistence.InstanceStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.QuotaStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.KeyPairStore), ["NotFound"] }, // NotFound only builds the exception
        { typeof(Ferry.ControlPlane.Persistence.ServerGroupStore), [] },
        { typeof(Ferry.ControlPlane.Identity.TokenStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.MigrationStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.ActionStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.CatalogStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.ServiceStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.ComputeNodeStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.VolumeStore), [] },
        { typeof(Ferry.ControlPlane.Persistence.DatabaseRpcDeduplicator), ["Dispose"] }, // Dispose only stops the renewal timer
        { typeof(Ferry.ControlPlane.Placement.PlacementService), [] },
    };

    [Theory]
    [MemberData(nameof(AsyncStores))]
    public void ConvertedStore_DoesItsDatabaseIoOnlyThroughTasks(Type store, string[] stillSynchronous)
    {
        var methods = store.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Where(m => !m.IsSpecialName)
            .ToList();
        var blocking = methods
            .Where(m => !IsTask(m.ReturnType) && !stillSynchronous.Contains(m.Name))
            .Select(m => m.Name)
            .ToList();
        Assert.Empty(blocking);
        Assert.All(stillSynchronous, name => Assert.Contains(methods, m => m.Name == name && !IsTask(m.ReturnType)));
        Assert.All(methods.Where(m => IsTask(m.ReturnType)), m =>
        {
            Assert.EndsWith("Async", m.Name, StringComparison.Ordinal);
            Assert.Equal(typeof(CancellationToken), m.GetParameters().SingleOrDefault(p => p.ParameterType == typeof(CancellationToken))?.ParameterType);
        });

        static bool IsTask(Type type) =>
            type == typeof(Task) || type == typeof(ValueTask)
            || (type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Task<>) || type.GetGenericTypeDefinition() == typeof(ValueTask<>)));
    }

    private static IEnumerable<Type> DependenciesOf(Type type)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var types = new List<Type>();
        if (type.BaseType is { } baseType)
        {
            types.Add(baseType);
        }
        types.AddRange(type.GetInterfaces());
        types.AddRange(type.GetFields(all).Select(f => f.FieldType));
        types.AddRange(type.GetProperties(all).Select(p => p.PropertyType));
        foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
        {
            types.AddRange(method.GetParameters().Select(p => p.ParameterType));
            if (method is MethodInfo info)
            {
                types.Add(info.ReturnType);
            }
        }
        return types.SelectMany(Unwrap).Distinct();

        static IEnumerable<Type> Unwrap(Type t)
        {
            if (t.HasElementType)
            {
                return Unwrap(t.GetElementType()!);
            }
            return t.IsGenericType ? t.GetGenericArguments().SelectMany(Unwrap).Append(t) : [t];
        }
    }
}
