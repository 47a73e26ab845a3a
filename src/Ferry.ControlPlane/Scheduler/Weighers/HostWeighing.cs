using System.Buffers;
using Ferry.Core.Domain;

namespace Ferry.ControlPlane.Scheduler.Weighers;

/// <summary>
/// Nova's weighing (nova/weights.py BaseWeightHandler.get_weighed_objects): each weigher's raw values
/// are min-max normalised to [0, 1] across the hosts (all equal ⇒ 0), multiplied and summed.
/// </summary>
public static class HostWeighing
{
    /// <summary>Sets the <see cref="WeighedHost.Weight"/> of every host.</summary>
    public static void Weigh(Span<WeighedHost> hosts, IReadOnlyList<IHostWeigher> weighers, RequestSpec spec)
    {
        for (var i = 0; i < hosts.Length; i++)
        {
            hosts[i].Weight = 0;
        }
        if (hosts.Length == 0)
        {
            return;
        }
        var raw = ArrayPool<double>.Shared.Rent(hosts.Length);
        try
        {
            for (var w = 0; w < weighers.Count; w++)
            {
                var weigher = weighers[w];
                var multiplier = weigher.Multiplier;
                if (multiplier == 0)
                {
                    continue;
                }
                var min = double.PositiveInfinity;
                var max = double.NegativeInfinity;
                for (var i = 0; i < hosts.Length; i++)
                {
                    var value = weigher.RawWeight(hosts[i].Host, spec);
                    raw[i] = value;
                    min = Math.Min(min, value);
                    max = Math.Max(max, value);
                }
                var range = max - min;
                if (!(range > 0))
                {
                    continue;
                }
                for (var i = 0; i < hosts.Length; i++)
                {
                    hosts[i].Weight += multiplier * ((raw[i] - min) / range);
                }
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(raw);
        }
    }

    /// <summary>Highest weight first; equal weights by host then node name, so the order is deterministic.</summary>
    public static void SortBestFirst(Span<WeighedHost> hosts) => hosts.Sort(static (a, b) =>
    {
        var byWeight = b.Weight.CompareTo(a.Weight);
        if (byWeight != 0)
        {
            return byWeight;
        }
        var byHost = string.CompareOrdinal(a.Host.Host, b.Host.Host);
        return byHost != 0 ? byHost : string.CompareOrdinal(a.Host.Nodename, b.Host.Nodename);
    });
}
