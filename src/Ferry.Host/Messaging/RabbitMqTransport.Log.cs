using Microsoft.Extensions.Logging;

namespace Ferry.Host.Messaging;

public sealed partial class RabbitMqTransport
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "Connected to the message broker at {Broker} (exchange {Exchange})")]
        public static partial void Connected(ILogger logger, string broker, string exchange);

        [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "Lost the message broker at {Broker} ({Reason}); reconnecting")]
        public static partial void ConnectionLost(ILogger logger, string broker, string reason);

        [LoggerMessage(EventId = 122, Level = LogLevel.Information, Message = "Reconnected to the message broker at {Broker}; listeners resumed")]
        public static partial void ConnectionRecovered(ILogger logger, string broker);

        [LoggerMessage(EventId = 123, Level = LogLevel.Information, Message = "Listening on {Topic} (queue {Queue})")]
        public static partial void Listening(ILogger logger, string topic, string queue);

        [LoggerMessage(EventId = 124, Level = LogLevel.Warning, Message = "Could not listen on {Topic} yet ({Reason}); retrying")]
        public static partial void ListenFailed(ILogger logger, string topic, string reason);

        [LoggerMessage(EventId = 125, Level = LogLevel.Warning, Message = "Publishing {Method} to {Destination} failed ({Reason}); retrying")]
        public static partial void PublishFailed(ILogger logger, string method, string destination, string reason);

        [LoggerMessage(EventId = 126, Level = LogLevel.Warning, Message = "Dropped {Method} on {Topic} (message {MessageId}): its caller's deadline has passed")]
        public static partial void ExpiredDropped(ILogger logger, string topic, string method, string messageId);

        [LoggerMessage(EventId = 127, Level = LogLevel.Information, Message = "{Method} on {Topic} (message {MessageId}, redelivered {Redelivered}) already ran; answered from its recorded outcome")]
        public static partial void DuplicateSkipped(ILogger logger, string topic, string method, string messageId, bool redelivered);

        [LoggerMessage(EventId = 128, Level = LogLevel.Error, Message = "Cast {Method} on {Topic} failed")]
        public static partial void CastFailed(ILogger logger, Exception ex, string topic, string method);

        [LoggerMessage(EventId = 129, Level = LogLevel.Warning, Message = "Could not ack a message on {Topic} ({Reason}); the broker will redeliver it")]
        public static partial void AckFailed(ILogger logger, string topic, string reason);

        [LoggerMessage(EventId = 130, Level = LogLevel.Warning, Message = "The reply to {Method} (message {MessageId}) could not be sent before its caller's deadline")]
        public static partial void ReplyLost(ILogger logger, string method, string messageId);

        [LoggerMessage(EventId = 132, Level = LogLevel.Information, Message = "{Method} on {Topic} (message {MessageId}) sent again: the connection recovered while its reply was awaited")]
        public static partial void CallResent(ILogger logger, string method, string topic, string messageId);

        [LoggerMessage(EventId = 133, Level = LogLevel.Warning, Message = "Reconnecting to the message broker at {Broker} failed ({Reason}); trying again")]
        public static partial void ReconnectFailed(ILogger logger, string broker, string reason);
    }
}
