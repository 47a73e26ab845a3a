using System.Net;

namespace Ferry.FunctionalTests.Observability;

/// <summary>Scrapes a Ferry's <c>/metrics</c> without a token, as Prometheus does, and parses the answer.</summary>
public static class MetricsScraper
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public static async Task<List<PrometheusSample>> ScrapeAsync(string baseUrl)
    {
        using var response = await s_http.GetAsync($"{baseUrl}/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {baseUrl}/metrics: {(int)response.StatusCode} {text}");
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        return PrometheusText.Parse(text);
    }

    /// <summary>The sum of the samples of <paramref name="name"/> with these labels; 0 when there are none (nothing counted yet).</summary>
    public static double Sum(this IEnumerable<PrometheusSample> samples, string name, params (string Label, string Value)[] labels) =>
        samples.Where(s => s.Name == name && s.Has(labels)).Sum(s => s.Value);
}
