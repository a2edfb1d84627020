// The part of mailsplit (nodemailer's MIME splitter, which mailparser is built on) we use.
declare module '@zone-eu/mailsplit' {
  import { Transform } from 'node:stream';

  export interface MimeHeaders {
    get(key: string): string[];
    getFirst(key: string): string;
    hasHeader(key: string): boolean;
    add(key: string, value: string, index?: number): void;
    update(key: string, value: string): void;
    remove(key: string): void;
    getList(): { readonly key: string; readonly line: string }[];
  }

  export interface MimeNode {
    readonly type: 'node';
    readonly root: boolean;
    /** The part's media type, lower case; false when it has no Content-Type. */
    readonly contentType: string | false;
    /** The declared Content-Transfer-Encoding, lower case; false or '' when it has none. */
    readonly encoding: string | false;
    /** The multipart subtype, when it is one. */
    readonly multipart: string | false;
    /** An attached message the splitter parses as a message of its own (its parts follow). */
    readonly messageNode?: boolean;
    readonly headers: MimeHeaders;
    getHeaders(): Buffer;
  }

  export type SplitterChunk = MimeNode | { readonly type: 'data' | 'body'; readonly value: Buffer };

  export class Splitter extends Transform {
    constructor(options?: { ignoreEmbedded?: boolean; defaultInlineEmbedded?: boolean; maxHeadSize?: number });
    [Symbol.asyncIterator](): AsyncIterableIterator<SplitterChunk>;
  }

  export class Joiner extends Transform {}
}

declare module 'libqp' {
  export function encode(buffer: Buffer): string;
  export function decode(str: string): Buffer;
  export function wrap(str: string, lineLength?: number): string;
}

declare module 'libbase64' {
  export function encode(buffer: Buffer): string;
  export function decode(str: string): Buffer;
  export function wrap(str: string, lineLength?: number): string;
}
