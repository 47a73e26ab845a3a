using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ferry.ControlPlane.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.ControlPlane.Identity;

/// <summary>
/// The Keystone v3 subset the OpenStack clients need (https://docs.openstack.org/api-ref/identity/v3/):
/// version discovery, password and token authentication, token validation and revocation, the
/// catalog, and read-only projects and users.
/// </summary>
public static class IdentityEndpoints
{
    private const string AuthRequired = "The request you have made requires authentication.";

    public static RouteGroupBuilder MapIdentityApi(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("");
        api.AddEndpointFilter(HandleErrorsAsync);
        api.MapGet("/", (HttpContext http) => Json(new JsonObject { ["versions"] = new JsonObject { ["values"] = new JsonArray(Version(http)) } }, 300));
        api.MapGet("/v3", (HttpContext http) => Json(new JsonObject { ["version"] = Version(http) }));
        api.MapPost("/v3/auth/tokens", IssueTokenAsync);
        api.MapGet("/v3/auth/tokens", ValidateTokenAsync);
        api.MapMethods("/v3/auth/tokens", ["HEAD"], CheckTokenAsync);
        api.MapDelete("/v3/auth/tokens", RevokeTokenAsync);
        api.MapGet("/v3/auth/catalog", GetCatalogAsync);
        api.MapGet("/v3/auth/projects", GetAuthProjectsAsync);
        api.MapGet("/v3/projects", ListProjectsAsync);
        api.MapGet("/v3/projects/{id}", ShowProjectAsync);
        api.MapGet("/v3/users", ListUsersAsync);
        api.MapGet("/v3/users/{id}", ShowUserAsync);
        api.MapGet("/v3/roles", ListRolesAsync);
        // Keystone (Flask) answers a served path with another method 405, an unknown path 404.
        api.Map("{**path}", (HttpContext http) => AllowedMethods.IsWrongMethod(http)
            ? Error(405, "Method Not Allowed", "The method is not allowed for the requested URL.")
            : Error(404, "Not Found", "The resource could not be found.")).AsFallback();
        return api;
    }

    /// <summary>Keystone's error body, which the clients print as one line: <c>{"error": {"code", "title", "message"}}</c>.</summary>
    public static IResult Error(int code, string title, string message) =>
        Json(new JsonObject { ["error"] = new JsonObject { ["code"] = code, ["message"] = message, ["title"] = title } }, code);

    private static IResult Json(JsonNode body, int status = 200) =>
        TypedResults.Json(body, ApiJsonContext.Default.JsonNode, statusCode: status);

    private static async ValueTask<object?> HandleErrorsAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var requestId = $"req-{Guid.NewGuid()}";
        http.Response.Headers["x-openstack-request-id"] = requestId;
        http.Response.Headers.Vary = "X-Auth-Token";
        try
        {
            var result = await next(context);
            if (http.Response.StatusCode == 401 || result is IStatusCodeHttpResult { StatusCode: 401 })
            {
                http.Response.Headers.WWWAuthenticate = $"Keystone uri=\"{NovaJson.BaseUrl(http)}\"";
            }
            return result;
        }
        catch (IdentityException ex)
        {
            if (ex.Code == 401)
            {
                http.Response.Headers.WWWAuthenticate = $"Keystone uri=\"{NovaJson.BaseUrl(http)}\"";
            }
            return Error(ex.Code, ex.Title, ex.Message);
        }
        catch (JsonException)
        {
            return Error(400, "Bad Request", "The request body is not valid JSON.");
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            ApiErrorLog.RequestFailed(http, "identity", ex);
            return Error(500, "Internal Server Error", "An unexpected error prevented the server from fulfilling your request.");
        }
    }

    private static JsonObject Version(HttpContext http) => new()
    {
        ["id"] = "v3.14",
        ["status"] = "stable",
        ["updated"] = "2020-04-07T00:00:00Z",
        ["links"] = new JsonArray(new JsonObject { ["rel"] = "self", ["href"] = $"{NovaJson.BaseUrl(http)}/v3/" }),
        ["media-types"] = new JsonArray(new JsonObject { ["base"] = "application/json", ["type"] = "application/vnd.openstack.identity-v3+json" }),
    };

    private static async Task<IResult> IssueTokenAsync(HttpContext http, IdentityStore store, TokenStore tokens, IdentityOptions options, LoginLockout lockout)
    {
        var body = await RequestJson.ReadAsync(http.Request, http.RequestAborted) as JsonObject;
        var auth = body?["auth"] as JsonObject ?? throw BadRequest("Expecting to find auth in request body.");
        var identity = auth["identity"] as JsonObject ?? throw BadRequest("Expecting to find identity in auth.");
        var methods = (identity["methods"] as JsonArray)?.Select((m, i) => m is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw BadRequest($"Invalid input for field 'identity/methods/{i}': {m?.ToJsonString() ?? "None"} is not of type 'string'")).ToList() ?? [];
        if (methods.Count == 0)
        {
            throw BadRequest("Expecting to find methods in identity.");
        }

        UserEntry user;
        IdentityToken? previous = null;
        if (methods.Contains("password"))
        {
            var userNode = (identity["password"] as JsonObject)?["user"] as JsonObject ?? throw BadRequest("Expecting to find user in password.");
            var password = Text(userNode, "password") ?? throw BadRequest("Expecting to find password in user.");
            UserEntry? found;
            if (Text(userNode, "id") is { } userId)
            {
                found = store.FindUser(userId);
            }
            else
            {
                var name = Text(userNode, "name") ?? throw BadRequest("Expecting to find id or name in user.");
                var domain = FindDomain(store, userNode["domain"] as JsonObject);
                found = domain is null ? null : store.FindUser(name, domain.Id);
            }
            if (found is not null && lockout.IsLocked(found.Id))
            {
                throw Unauthorized($"The account is locked for user: {found.Id}.");
            }
            if (store.CheckPassword(found, password) is not { } checkedUser)
            {
                if (found is not null)
                {
                    lockout.RecordFailure(found.Id);
                }
                throw Unauthorized(AuthRequired);
            }
            lockout.Reset(checkedUser.Id);
            user = checkedUser;
        }
        else if (methods.Contains("token"))
        {
            previous = await tokens.ValidateAsync(Text(identity["token"] as JsonObject, "id"), http.RequestAborted) ?? throw Unauthorized(AuthRequired);
            user = previous.User;
        }
        else
        {
            throw Unauthorized($"Attempted to authenticate with an unsupported method: {string.Join(", ", methods)}.");
        }

        ProjectEntry? project = null;
        IReadOnlyList<RoleEntry> roles = [];
        if (auth["scope"] is JsonObject scope)
        {
            if (scope["project"] is not JsonObject projectNode)
            {
                throw Unauthorized("Only project-scoped and unscoped tokens are supported.");
            }
            if (Text(projectNode, "id") is { } projectId)
            {
                project = store.FindProject(projectId);
            }
            else
            {
                var name = Text(projectNode, "name") ?? throw BadRequest("Expecting to find id or name in project.");
                var domain = FindDomain(store, projectNode["domain"] as JsonObject);
                project = domain is null ? null : store.FindProject(name, domain.Id);
            }
            if (project is not { Enabled: true })
            {
                throw Unauthorized("Could not find project.");
            }
            roles = store.RolesOf(user.Id, project.Id);
            if (roles.Count == 0)
            {
                throw Unauthorized($"User {user.Id} has no access to project {project.Id}");
            }
        }

        // A token obtained with a token keeps the original's expiry and audit chain.
        var token = await tokens.IssueAsync(user, project, roles, previous is null ? methods : previous.Methods, previous?.ExpiresAt, previous?.AuditId, http.RequestAborted);
        http.Response.Headers["X-Subject-Token"] = token.Id;
        return Json(new JsonObject { ["token"] = TokenView(token, store, options) }, 201);
    }

    private static async Task<IResult> ValidateTokenAsync(HttpContext http, IdentityStore store, TokenStore tokens, IdentityOptions options)
    {
        var subject = await SubjectAsync(http, tokens);
        http.Response.Headers["X-Subject-Token"] = subject.Id;
        var view = TokenView(subject, store, options);
        if (http.Request.Query.ContainsKey("nocatalog"))
        {
            view.Remove("catalog");
        }
        return Json(new JsonObject { ["token"] = view });
    }

    private static async Task<IResult> CheckTokenAsync(HttpContext http, TokenStore tokens)
    {
        http.Response.Headers["X-Subject-Token"] = (await SubjectAsync(http, tokens)).Id;
        return Results.Ok();
    }

    private static async Task<IResult> RevokeTokenAsync(HttpContext http, TokenStore tokens)
    {
        await tokens.RevokeAsync((await SubjectAsync(http, tokens)).Id, http.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> GetCatalogAsync(HttpContext http, TokenStore tokens, IdentityOptions options)
    {
        var caller = await CallerAsync(http, tokens);
        return Json(new JsonObject { ["catalog"] = Catalog(options, caller.Project?.Id), ["links"] = SelfLinks(http) });
    }

    private static async Task<IResult> GetAuthProjectsAsync(HttpContext http, IdentityStore store, TokenStore tokens) =>
        Json(new JsonObject
        {
            ["projects"] = new JsonArray([.. store.ProjectsOf((await CallerAsync(http, tokens)).User.Id).Select(p => (JsonNode)ProjectView(http, p))]),
            ["links"] = SelfLinks(http),
        });

    private static async Task<IResult> ListProjectsAsync(HttpContext http, IdentityStore store, TokenStore tokens)
    {
        RequireAdmin(await CallerAsync(http, tokens), "identity:list_projects");
        var name = http.Request.Query["name"].ToString();
        return Json(new JsonObject
        {
            ["projects"] = new JsonArray([.. store.Config.Projects.Where(p => name.Length == 0 || p.Name == name).Select(p => (JsonNode)ProjectView(http, p))]),
            ["links"] = SelfLinks(http),
        });
    }

    private static async Task<IResult> ShowProjectAsync(HttpContext http, string id, IdentityStore store, TokenStore tokens)
    {
        var caller = await CallerAsync(http, tokens);
        // Keystone's get_project: admin, or a token scoped to that very project.
        if (!caller.IsAdmin && caller.Project?.Id != id)
        {
            throw Forbidden("identity:get_project");
        }
        var project = store.FindProject(id);
        if (project is null)
        {
            return Error(404, "Not Found", $"Could not find project: {id}.");
        }
        return Json(new JsonObject { ["project"] = ProjectView(http, project) });
    }

    private static async Task<IResult> ListUsersAsync(HttpContext http, IdentityStore store, TokenStore tokens)
    {
        RequireAdmin(await CallerAsync(http, tokens), "identity:list_users");
        var name = http.Request.Query["name"].ToString();
        return Json(new JsonObject
        {
            ["users"] = new JsonArray([.. store.Config.Users.Where(u => name.Length == 0 || u.Name == name).Select(u => (JsonNode)UserView(http, u))]),
            ["links"] = SelfLinks(http),
        });
    }

    private static async Task<IResult> ShowUserAsync(HttpContext http, string id, IdentityStore store, TokenStore tokens)
    {
        var caller = await CallerAsync(http, tokens);
        // Keystone's get_user: admin, or the user's own record.
        if (!caller.IsAdmin && caller.User.Id != id)
        {
            throw Forbidden("identity:get_user");
        }
        var user = store.FindUser(id);
        if (user is null)
        {
            return Error(404, "Not Found", $"Could not find user: {id}.");
        }
        return Json(new JsonObject { ["user"] = UserView(http, user) });
    }

    private static async Task<IResult> ListRolesAsync(HttpContext http, IdentityStore store, TokenStore tokens)
    {
        RequireAdmin(await CallerAsync(http, tokens), "identity:list_roles");
        return Json(new JsonObject
        {
            ["roles"] = new JsonArray([.. store.Config.Roles.Select(r => (JsonNode)new JsonObject { ["id"] = r.Id, ["name"] = r.Name, ["domain_id"] = null })]),
            ["links"] = SelfLinks(http),
        });
    }

    /// <summary>The token body Keystone returns from issue and validate.</summary>
    public static JsonObject TokenView(IdentityToken token, IdentityStore store, IdentityOptions options)
    {
        var view = new JsonObject
        {
            ["methods"] = new JsonArray([.. token.Methods.Select(m => (JsonNode)m)]),
            ["user"] = new JsonObject
            {
                ["domain"] = DomainView(store.DomainOf(token.User.DomainId)),
                ["id"] = token.User.Id,
                ["name"] = token.User.Name,
                ["password_expires_at"] = null,
            },
            ["audit_ids"] = new JsonArray(token.AuditId),
            ["expires_at"] = Timestamp(token.ExpiresAt),
            ["issued_at"] = Timestamp(token.IssuedAt),
        };
        if (token.Project is { } project)
        {
            view["project"] = new JsonObject { ["domain"] = DomainView(store.DomainOf(project.DomainId)), ["id"] = project.Id, ["name"] = project.Name };
            view["is_domain"] = false;
            view["roles"] = new JsonArray([.. token.Roles.Select(r => (JsonNode)new JsonObject { ["id"] = r.Id, ["name"] = r.Name })]);
            view["catalog"] = Catalog(options, project.Id);
        }
        return view;
    }

    /// <summary>
    /// The service catalog: every service with a public, internal and admin endpoint in the region. A URL naming
    /// <c>$(project_id)s</c> (or <c>%(project_id)s</c>) gets the token's project, as Keystone substitutes it; without a
    /// project such a service is left out, as Keystone leaves out an endpoint it cannot complete.
    /// </summary>
    public static JsonArray Catalog(IdentityOptions options, string? projectId) =>
        new([.. options.Catalog.Select(service => (Service: service, Url: Substitute(service.Url, projectId))).Where(s => s.Url is not null)
            .Select(s => (JsonNode)new JsonObject
        {
            ["endpoints"] = new JsonArray([.. new[] { "public", "internal", "admin" }.Select(face => (JsonNode)new JsonObject
            {
                ["id"] = StableId($"{s.Service.Type}/{face}"),
                ["interface"] = face,
                ["region_id"] = options.Region,
                ["url"] = s.Url,
                ["region"] = options.Region,
            })]),
            ["id"] = StableId(s.Service.Type),
            ["type"] = s.Service.Type,
            ["name"] = s.Service.Name,
        })]);

    private static string? Substitute(string url, string? projectId)
    {
        if (!url.Contains("(project_id)s", StringComparison.Ordinal))
        {
            return url;
        }
        return projectId is null ? null : url.Replace("$(project_id)s", projectId, StringComparison.Ordinal).Replace("%(project_id)s", projectId, StringComparison.Ordinal);
    }

    /// <summary><c>2026-11-23T11:12:45.000000Z</c>: ISO 8601 with microseconds and a Z, as Keystone writes them.</summary>
    public static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static JsonObject DomainView(DomainEntry domain) => new() { ["id"] = domain.Id, ["name"] = domain.Name };

    private static JsonObject ProjectView(HttpContext http, ProjectEntry p) => new()
    {
        ["id"] = p.Id,
        ["name"] = p.Name,
        ["domain_id"] = p.DomainId,
        ["description"] = p.Description,
        ["enabled"] = p.Enabled,
        ["parent_id"] = p.DomainId,
        ["is_domain"] = false,
        ["tags"] = new JsonArray(),
        ["options"] = new JsonObject(),
        ["links"] = new JsonObject { ["self"] = $"{NovaJson.BaseUrl(http)}/v3/projects/{p.Id}" },
    };

    private static JsonObject UserView(HttpContext http, UserEntry u) => new()
    {
        ["id"] = u.Id,
        ["name"] = u.Name,
        ["domain_id"] = u.DomainId,
        ["enabled"] = u.Enabled,
        ["password_expires_at"] = null,
        ["options"] = new JsonObject(),
        ["links"] = new JsonObject { ["self"] = $"{NovaJson.BaseUrl(http)}/v3/users/{u.Id}" },
    };

    private static JsonObject SelfLinks(HttpContext http) => new()
    {
        ["self"] = $"{NovaJson.BaseUrl(http)}{http.Request.Path}",
        ["previous"] = null,
        ["next"] = null,
    };

    private static DomainEntry? FindDomain(IdentityStore store, JsonObject? domain) =>
        domain is null ? store.FindDomain(IdentityStore.DefaultDomainId, null) : store.FindDomain(Text(domain, "id"), Text(domain, "name"));

    private static string? Text(JsonObject? o, string key) =>
        o?[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>The caller's token (X-Auth-Token); 401 when missing, unknown or expired.</summary>
    private static async Task<IdentityToken> CallerAsync(HttpContext http, TokenStore tokens) =>
        await tokens.ValidateAsync(http.Request.Headers["X-Auth-Token"].ToString(), http.RequestAborted) ?? throw Unauthorized(AuthRequired);

    /// <summary>The token asked about (X-Subject-Token); the caller must be admin or its owner.</summary>
    private static async Task<IdentityToken> SubjectAsync(HttpContext http, TokenStore tokens)
    {
        var caller = await CallerAsync(http, tokens);
        var subjectId = http.Request.Headers["X-Subject-Token"].ToString();
        var subject = await tokens.ValidateAsync(subjectId, http.RequestAborted)
            ?? throw new IdentityException(404, "Not Found", $"Could not find token: {subjectId}.");
        if (!caller.IsAdmin && caller.User.Id != subject.User.Id)
        {
            throw Forbidden("identity:validate_token");
        }
        return subject;
    }

    private static string StableId(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..32];

    private static IdentityException Unauthorized(string message) => new(401, "Unauthorized", message);

    /// <summary>Keystone's policy refusal (ForbiddenAction), naming the rule.</summary>
    private static IdentityException Forbidden(string action) => new(403, "Forbidden", $"You are not authorized to perform the requested action: {action}.");

    /// <summary>
    /// Keystone's default policy for listing users, projects and roles (admin or a system/domain reader): a
    /// project-scoped non-admin is refused; it reads itself at /v3/users/{id} and its projects at /v3/auth/projects.
    /// </summary>
    private static void RequireAdmin(IdentityToken caller, string action)
    {
        if (!caller.IsAdmin)
        {
            throw Forbidden(action);
        }
    }

    private static IdentityException BadRequest(string message) => new(400, "Bad Request", message);
}

/// <summary>An identity API error, answered as Keystone's <c>{"error": …}</c> body.</summary>
public sealed class IdentityException(int code, string title, string message) : Exception(message)
{
    public int Code { get; } = code;
    public string Title { get; } = title;
}
